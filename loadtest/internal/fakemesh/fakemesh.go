// Package fakemesh is an in-process stand-in for the mesh, for loadtest's tests: an
// http.Handler that answers like the client → server1 → server2 chain would, choosing
// the version of each hop and the status of each response from seeded random draws at
// known ratios. With a seed and a fixed number of requests the counts are fixed too,
// however the requests interleave: draws are taken in arrival order under a lock.
package fakemesh

import (
	"fmt"
	"maps"
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
	// RetryEvery marks the last hop of every n-th response as reached by a second
	// attempt (attempt=2), as Envoy's retry would (0: never).
	RetryEvery int
}

// Served is what the fake answered: the status of every response and, for those that
// carried the path header, the version and instance of each hop.
type Served struct {
	Status    map[int]int64
	Hops      map[string]map[string]int64 // service → version → responses
	Instances map[string]map[string]int64 // service → instance → responses
	Retried   int64
}

// Handler is the fake mesh.
type Handler struct {
	cfg Config

	mu     sync.Mutex
	rng    *rand.Rand
	seen   int
	served Served
}

// New returns a fake mesh.
func New(cfg Config) *Handler {
	return &Handler{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		served: Served{Status: map[int]int64{}, Hops: map[string]map[string]int64{}, Instances: map[string]map[string]int64{}},
	}
}

// SetChain changes the chain from the next request on, as applying a route would.
func (h *Handler) SetChain(chain []Hop) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cfg.Chain = chain
}

// Served returns a copy of what was answered so far.
func (h *Handler) Served() Served {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Served{Status: maps.Clone(h.served.Status), Hops: map[string]map[string]int64{}, Instances: map[string]map[string]int64{}, Retried: h.served.Retried}
	for k, v := range h.served.Hops {
		out.Hops[k] = maps.Clone(v)
	}
	for k, v := range h.served.Instances {
		out.Instances[k] = maps.Clone(v)
	}
	return out
}

func count(m map[string]map[string]int64, a, b string) {
	if m[a] == nil {
		m[a] = map[string]int64{}
	}
	m[a][b]++
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
	withPath := len(hops) > 0 && (h.cfg.PathlessEvery == 0 || n%h.cfg.PathlessEvery != 0)
	retried := withPath && h.cfg.RetryEvery > 0 && n%h.cfg.RetryEvery == 0
	if retried {
		hops[len(hops)-1].Attrs = map[string]string{"attempt": "2"}
		h.served.Retried++
	}
	h.served.Status[status]++
	if withPath {
		for _, hp := range hops {
			count(h.served.Hops, hp.Service, hp.Version)
			count(h.served.Instances, hp.Service, hp.Instance)
		}
	}
	h.mu.Unlock()

	if h.cfg.Delay > 0 {
		time.Sleep(h.cfg.Delay)
	}
	path := ""
	for i := len(hops) - 1; i >= 0; i-- {
		path = pathheader.Prepend(hops[i], path)
	}
	if withPath {
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
