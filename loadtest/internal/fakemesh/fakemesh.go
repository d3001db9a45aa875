// Package fakemesh is an in-process stand-in for the mesh, for loadtest's tests: an
// http.Handler that answers like the client → server1 → server2 chain would, choosing
// the version of each hop and the status of each response from seeded random draws at
// known ratios. With a seed and a fixed number of requests the counts are fixed too,
// however the requests interleave: draws are taken in arrival order under a lock.
package fakemesh

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Hop describes one workload of the chain: its name and the weights of its versions.
type Hop struct {
	Service string
	Weights map[string]int // version → weight
}

// Config describes the fake mesh.
type Config struct {
	Seed  uint64
	Chain []Hop
	// Statuses maps status codes to weights; empty means always 200.
	Statuses map[int]int
	// Delay is added to every response.
	Delay time.Duration
	// PathlessEvery makes every n-th response omit the path header (0: never).
	PathlessEvery int
}

// Handler is the fake mesh.
type Handler struct {
	cfg Config

	mu   sync.Mutex
	rng  *rand.Rand
	seen int
}

// New returns a fake mesh.
func New(cfg Config) *Handler {
	return &Handler{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
}

// Requests is the number of requests answered so far.
func (h *Handler) Requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen++
	n := h.seen
	hops := make([]pathheader.Hop, 0, len(h.cfg.Chain))
	for i, c := range h.cfg.Chain {
		v := pick(h.rng, c.Weights)
		hops = append(hops, pathheader.Hop{Service: c.Service, Version: v, Instance: fmt.Sprintf("%s-%s-%d", c.Service, v, i)})
	}
	status := http.StatusOK
	if len(h.cfg.Statuses) > 0 {
		var code string
		weights := make(map[string]int, len(h.cfg.Statuses))
		for c, wt := range h.cfg.Statuses {
			weights[fmt.Sprint(c)] = wt
		}
		code = pick(h.rng, weights)
		fmt.Sscan(code, &status)
	}
	h.mu.Unlock()

	if h.cfg.Delay > 0 {
		time.Sleep(h.cfg.Delay)
	}
	path := ""
	for i := len(hops) - 1; i >= 0; i-- {
		path = pathheader.Prepend(hops[i], path)
	}
	if path != "" && (h.cfg.PathlessEvery == 0 || n%h.cfg.PathlessEvery != 0) {
		w.Header().Set(pathheader.Name, path)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"status":%d,"host":%q}`, status, r.Host)
}

// pick draws a key with probability proportional to its weight; keys are visited in
// sorted order so that a seed gives the same draws on every run.
func pick(rng *rand.Rand, weights map[string]int) string {
	keys := make([]string, 0, len(weights))
	total := 0
	for k, w := range weights {
		keys = append(keys, k)
		total += w
	}
	slices.Sort(keys)
	x := rng.IntN(total)
	for _, k := range keys {
		x -= weights[k]
		if x < 0 {
			return k
		}
	}
	return keys[len(keys)-1]
}
