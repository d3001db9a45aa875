package engine

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/fakemesh"
	"github.com/meshdemo/meshdemo/loadtest/internal/result"
	"github.com/meshdemo/meshdemo/services/headers"
)

func TestRunCountsEveryRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  Config
	}{
		{"closed model", Config{Concurrency: 4, Requests: 300, Timeout: 5 * time.Second}},
		{"open model", Config{Rate: 1000, MaxInFlight: 50, Requests: 300, Timeout: 5 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fake := fakemesh.New(fakemesh.Config{
				Seed:     1,
				Chain:    []fakemesh.Hop{{Service: "client", Weights: map[string]int{"v1": 1}}, {Service: "server2", Weights: map[string]int{"v1": 80, "v2": 20}}},
				Statuses: map[int]int{200: 9, 503: 1},
			})
			var hosts, extra atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Host == "client.meshdemo" {
					hosts.Add(1)
				}
				if r.Header.Get(headers.Fault) == "server2=abort:503@10" {
					extra.Add(1)
				}
				fake.ServeHTTP(w, r)
			}))
			defer srv.Close()
			cfg := c.cfg
			cfg.URL = srv.URL + "/client/server1"
			cfg.Host = "client.meshdemo"
			cfg.Headers = []string{headers.Fault + ": server2=abort:503@10"}
			rec := result.NewRecorder(time.Now(), nil)
			elapsed, err := Run(context.Background(), cfg, rec)
			if err != nil {
				t.Fatal(err)
			}
			sum := rec.Summary(elapsed)
			if sum.Requests != 300 || fake.Requests() != 300 {
				t.Fatalf("recorded %d, server saw %d, want 300 each", sum.Requests, fake.Requests())
			}
			if hosts.Load() != 300 || extra.Load() != 300 {
				t.Errorf("Host header on %d, extra header on %d requests, want 300", hosts.Load(), extra.Load())
			}
			if sum.Status[200]+sum.Status[503] != 300 || sum.Status[503] == 0 {
				t.Errorf("status = %v", sum.Status)
			}
			// The path header is read from error responses too.
			if got := sum.Hops["client"]["v1"]; got != 300 {
				t.Errorf("client/v1 = %d, want 300 (hops %v, missing %d)", got, sum.Hops, sum.PathMissing)
			}
			if v1, v2 := sum.Hops["server2"]["v1"], sum.Hops["server2"]["v2"]; v1+v2 != 300 || v2 < 30 || v2 > 90 {
				t.Errorf("server2 v1=%d v2=%d", v1, v2)
			}
			if c.cfg.Rate > 0 && elapsed < 250*time.Millisecond {
				t.Errorf("300 requests at 1000/s took %v, want about 300ms", elapsed)
			}
		})
	}
}

// TestOpenModelKeepsScheduleWhenTargetSlows is the point of the open model: a target
// that takes 200ms per request still gets 100 requests per second, from more
// connections, and the latency shows the 200ms.
func TestOpenModelKeepsScheduleWhenTargetSlows(t *testing.T) {
	t.Parallel()
	fake := fakemesh.New(fakemesh.Config{Seed: 2, Delay: 200 * time.Millisecond})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	rec := result.NewRecorder(time.Now(), nil)
	elapsed, err := Run(context.Background(), Config{URL: srv.URL, Rate: 100, MaxInFlight: 100, Requests: 100, Timeout: 5 * time.Second}, rec)
	if err != nil {
		t.Fatal(err)
	}
	sum := rec.Summary(elapsed)
	if sum.Requests != 100 {
		t.Fatalf("requests = %d", sum.Requests)
	}
	// A closed model with one connection would need 20s; open, it is ~1s + 200ms.
	if elapsed > 3*time.Second {
		t.Errorf("elapsed %v: the schedule waited for the target", elapsed)
	}
	if sum.Latency.P50MS < 195 {
		t.Errorf("p50 = %.1fms, want >= 200ms", sum.Latency.P50MS)
	}
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	// A listener that accepts and never answers: every request times out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	rec := result.NewRecorder(time.Now(), nil)
	elapsed, err := Run(context.Background(), Config{URL: "http://" + ln.Addr().String() + "/", Concurrency: 2, Requests: 4, Timeout: 200 * time.Millisecond}, rec)
	if err != nil {
		t.Fatal(err)
	}
	sum := rec.Summary(elapsed)
	if sum.Errors[result.ErrTimeout] != 4 {
		t.Errorf("errors = %v, want 4 timeouts", sum.Errors)
	}

	// A closed port: connect errors.
	closed := closedAddr(t)
	rec = result.NewRecorder(time.Now(), nil)
	elapsed, err = Run(context.Background(), Config{URL: "http://" + closed + "/", Concurrency: 1, Requests: 3, Timeout: time.Second}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if sum := rec.Summary(elapsed); sum.Errors[result.ErrConnect] != 3 {
		t.Errorf("errors = %v, want 3 connect errors", sum.Errors)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProbe(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if err := Probe(context.Background(), srv.URL, time.Second); err != nil {
		t.Errorf("live server: %v", err)
	}
	err := Probe(context.Background(), "http://"+closedAddr(t)+"/", time.Second)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: err = %v, want connection refused", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Config{URL: "http://x:1/", Rate: 1, MaxInFlight: 1, Duration: time.Second, Timeout: time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"no scheme":        func(c *Config) { c.URL = "x:1/" },
		"ftp":              func(c *Config) { c.URL = "ftp://x/" },
		"both models":      func(c *Config) { c.Concurrency = 2 },
		"no model":         func(c *Config) { c.Rate = 0 },
		"both stops":       func(c *Config) { c.Requests = 10 },
		"one request":      func(c *Config) { c.Duration, c.Requests = 0, 1 },
		"no timeout":       func(c *Config) { c.Timeout = 0 },
		"header sans name": func(c *Config) { c.Headers = []string{": x"} },
		"header sans ':'":  func(c *Config) { c.Headers = []string{"X-A"} },
	}
	for name, mut := range cases {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	raw := []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: x\r\nx-meshdemo-path:  a/v1@i \r\n\r\nX-Meshdemo-Path: body/v9@no")
	if got := string(header(raw, "X-Meshdemo-Path")); got != "a/v1@i" {
		t.Errorf("header = %q", got)
	}
	if got := header([]byte("HTTP/1.1 200 OK\r\nX-Meshdemo-Pathx: b\r\n\r\n"), "X-Meshdemo-Path"); got != nil {
		t.Errorf("prefix match: %q", got)
	}
	if got := string(header([]byte("HTTP/1.1 503 X\r\nX-Meshdemo-Path: cut/v1@i"), "X-Meshdemo-Path")); got != "cut/v1@i" {
		t.Errorf("truncated response: %q", got)
	}
}

// FuzzHeader: the raw response comes from the network; the scan must not panic and
// must return a value that lies within the response.
func FuzzHeader(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nX-Meshdemo-Path: a/v1@i\r\n\r\nbody"))
	f.Add([]byte("HTTP/1.1 503 X\r\nx-meshdemo-path:"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v := header(raw, "X-Meshdemo-Path")
		if v != nil && !bytes.Contains(raw, v) {
			t.Fatalf("value %q not in input", v)
		}
	})
}

// TestRunMarksWhereTheLoadEnds: the timeline's last second ends when the schedule
// stops, not when the last slow response arrives, so a 1.5 s run against a target
// that answers in 300 ms ends with a second that lasted half a second (0.8 s if the
// drain were counted).
func TestRunMarksWhereTheLoadEnds(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(fakemesh.New(fakemesh.Config{Seed: 1, Delay: 300 * time.Millisecond}))
	defer srv.Close()
	rec := result.NewRecorder(time.Now(), nil)
	elapsed, err := Run(context.Background(), Config{URL: srv.URL, Rate: 100, MaxInFlight: 100, Duration: 1500 * time.Millisecond, Timeout: 5 * time.Second}, rec)
	if err != nil {
		t.Fatal(err)
	}
	sum := rec.Summary(elapsed)
	if len(sum.Timeline) != 2 {
		t.Fatalf("timeline of %d seconds, want 2", len(sum.Timeline))
	}
	first, last := sum.Timeline[0], sum.Timeline[1]
	t.Logf("elapsed %v; last second lasted %.3fs with %d requests, first %d", elapsed, last.Seconds, last.Requests, first.Requests)
	if first.Seconds != 1 || last.Seconds < 0.45 || last.Seconds > 0.7 {
		t.Errorf("seconds lasted %v and %v, want 1 and about 0.5", first.Seconds, last.Seconds)
	}
	if elapsed < 1700*time.Millisecond {
		t.Errorf("elapsed %v: the 300 ms responses should have been waited for", elapsed)
	}
}
