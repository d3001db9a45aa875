package balancing

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTally counts the server1 hop of each answer, over every request and worker.
func TestTally(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("X-Meshdemo-Path", fmt.Sprintf("client/v1@c, server1/v1@s%d, server2/v1@t", i%3))
	}))
	defer srv.Close()
	c, err := Tally(t.Context(), NewHTTPClient(4), srv.URL, "server1", 30, 4)
	if err != nil {
		t.Fatal(err)
	}
	if c["s0"] != 10 || c["s1"] != 10 || c["s2"] != 10 || len(c) != 3 {
		t.Errorf("counts %v, want s0, s1, s2 ten each", c)
	}
	if got := (Counts{"b": 1, "a": 1, "z": 5}).String(); got != "z=5 a=1 b=1" {
		t.Errorf("String() = %q", got)
	}
}

// TestTallyErrors: a non-200 answer, a path without the service or a bad path ends the run.
func TestTallyErrors(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"status 503": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Meshdemo-Path", "server1/v1@a")
			http.Error(w, "down", http.StatusServiceUnavailable)
		},
		"no server1 hop": func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Meshdemo-Path", "client/v1@a") },
		"no path header": func(w http.ResponseWriter, r *http.Request) {},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			if c, err := Tally(t.Context(), NewHTTPClient(2), srv.URL, "server1", 10, 2); err == nil {
				t.Errorf("no error, counts %v", c)
			}
		})
	}
	if _, err := Tally(t.Context(), NewHTTPClient(1), "http://127.0.0.1:1", "server1", 0, 1); err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("n=0: %v", err)
	}
}
