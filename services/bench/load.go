package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// newLoadClient is the load generator's client: enough idle connections for every
// worker, so the generator never dials during a run.
func newLoadClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConns:        4 * workers,
			MaxIdleConnsPerHost: 2 * workers,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// slice is what one closed-loop run of the load measured.
type slice struct {
	ok, errs int
	elapsed  time.Duration
	lat      []time.Duration // of successful requests
	firstErr string
}

// load runs workers closed loops of GET url for d. A request succeeds when it answers
// 200 with a body of exactly wantLen bytes.
func load(ctx context.Context, c *http.Client, url string, workers int, d time.Duration, wantLen int) slice {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type part struct {
		lat      []time.Duration
		errs     int
		firstErr string
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &parts[i]
			p.lat = make([]time.Duration, 0, 1<<14)
			var buf bytes.Buffer
			for ctx.Err() == nil {
				start := time.Now()
				err := get(ctx, c, url, &buf, wantLen)
				if ctx.Err() != nil {
					return // cut short by the end of the run: neither success nor error
				}
				if err != nil {
					p.errs++
					if p.firstErr == "" {
						p.firstErr = err.Error()
					}
					continue
				}
				p.lat = append(p.lat, time.Since(start))
			}
		}()
	}
	wg.Wait()
	s := slice{elapsed: time.Since(t0)}
	for _, p := range parts {
		s.ok += len(p.lat)
		s.errs += p.errs
		s.lat = append(s.lat, p.lat...)
		if s.firstErr == "" {
			s.firstErr = p.firstErr
		}
	}
	return s
}

func get(ctx context.Context, c *http.Client, url string, buf *bytes.Buffer, wantLen int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if wantLen >= 0 && buf.Len() != wantLen {
		return fmt.Errorf("body of %d bytes, want %d", buf.Len(), wantLen)
	}
	return nil
}

// probe fetches url once and returns its body and path header, to check that a chain
// answers what server2 answers before loading it.
func probe(ctx context.Context, c *http.Client, url string) (body []byte, path string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	if !bytes.Contains(body, []byte(`"firstName":"Mick","lastName":"Chung"`)) {
		return nil, "", fmt.Errorf("GET %s: unexpected body %s", url, body)
	}
	return body, resp.Header.Get("X-Meshdemo-Path"), nil
}

// quantile returns the q-quantile (nearest rank) of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
