// Package balancing counts which instance of a service answered a series of requests, read
// from the X-Meshdemo-Path header: the measurement behind the gRPC "before" picture (one
// gRPC connection pinned to one server1, HTTP spread only as concurrent calls open
// connections). The compose demo (`make compose-grpc-demo`) and the container test share it.
package balancing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Counts is the number of answers per instance of the counted service.
type Counts map[string]int

// Instances returns the instances, most answers first (ties by name).
func (c Counts) Instances() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if c[out[i]] != c[out[j]] {
			return c[out[i]] > c[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// String prints "abc=40 def=20", most answers first.
func (c Counts) String() string {
	var b strings.Builder
	for i, k := range c.Instances() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, c[k])
	}
	return b.String()
}

// Tally sends n GETs to url from concurrency workers (each request starts only when a worker
// is free) and counts the instance of service named in each answer's path header. Any
// answer other than 200, or one whose path header lacks service, ends the run with an error.
func Tally(ctx context.Context, hc *http.Client, url, service string, n, concurrency int) (Counts, error) {
	if n < 1 || concurrency < 1 {
		return nil, fmt.Errorf("balancing: n=%d and concurrency=%d must both be at least 1", n, concurrency)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next   atomic.Int64
		mu     sync.Mutex
		counts = Counts{}
		wg     sync.WaitGroup
	)
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				inst, err := one(ctx, hc, url, service)
				if err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				counts[inst]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return counts, err
	}
	return counts, nil
}

func one(ctx context.Context, hc *http.Client, url, service string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	hops, err := pathheader.Parse(resp.Header.Get(pathheader.Name))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	h, ok := pathheader.Find(hops, service)
	if !ok {
		return "", fmt.Errorf("GET %s: no %s in path %q", url, service, resp.Header.Get(pathheader.Name))
	}
	return h.Instance, nil
}

// NewHTTPClient is a client for Tally: bounded, and with enough idle connections that the
// caller's own side never limits the concurrency it asks for.
func NewHTTPClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        2 * concurrency,
			MaxIdleConnsPerHost: 2 * concurrency,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
