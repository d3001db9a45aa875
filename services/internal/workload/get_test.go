package workload

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/nettest"
)

// runGet goes through Main, as `/workload get ...` in a container does. The environment
// is deliberately invalid: get needs no configuration.
func runGet(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	badEnv := func(k string) string {
		if k == "PORT" {
			return "not-a-port"
		}
		return ""
	}
	err := Main(context.Background(), append([]string{"server1", "get"}, args...), badEnv, &stdout, &stderr,
		Spec{Name: "server1", Settings: &Base{}})
	return stdout.String(), stderr.String(), err
}

func TestGetPrintsStatusAndBody(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Clone(context.Background())
		mu.Unlock()
		if r.URL.Path == "/api/users" {
			http.Error(w, "RBAC: access denied", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()

	tests := []struct {
		name, path string
		args       []string
		want       string
	}{
		{"403 is an answer, not an error", "/api/users", nil, "403\nRBAC: access denied\n"},
		{"200 with a body lacking a newline", "/server2/end", nil, "200\n{\"ok\":true}\n"},
		{"headers travel with their spelling", "/server2/end",
			[]string{"-H", headers.Fault + ": server2=abort:503@100", "-H", "canary_id: v2", "-H", "Host: server2.meshdemo"},
			"200\n{\"ok\":true}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"-timeout", "5s"}, tt.args...), srv.URL+tt.path)
			out, errOut, err := runGet(t, args...)
			if err != nil {
				t.Fatalf("err %v (stderr %q)", err, errOut)
			}
			if out != tt.want {
				t.Errorf("stdout %q, want %q", out, tt.want)
			}
			if len(tt.args) == 0 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if v := seen.Header.Get(headers.Fault); v != "server2=abort:503@100" {
				t.Errorf("%s %q", headers.Fault, v)
			}
			// Go's server canonicalises what it reads (Canary_id); Envoy matches names without case.
			if v := seen.Header["Canary_id"]; len(v) != 1 || v[0] != "v2" {
				t.Errorf("canary_id %q (headers %v)", v, seen.Header)
			}
			if seen.Host != "server2.meshdemo" {
				t.Errorf("Host %q", seen.Host)
			}
		})
	}
}

// TestGetFailsWithoutAnAnswer: no HTTP answer is an error (exit status 1), and nothing is
// printed on stdout, so a caller never mistakes a refused, reset or timed-out call for a code.
func TestGetFailsWithoutAnAnswer(t *testing.T) {
	t.Parallel()
	// Accepts, then closes at once: what a STRICT mTLS sidecar does to a plaintext call.
	reset, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reset.Close()
	go func() {
		for {
			c, err := reset.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	refusedURL := nettest.RefusedURL(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"connection reset", []string{"http://" + reset.Addr().String() + "/"}, "get http://"},
		{"connection refused", []string{refusedURL + "/"}, "refused"},
		{"timeout", []string{"-timeout", "300ms", slow.URL + "/"}, "no answer within 300ms"},
		{"no URL", nil, "exactly one URL"},
		{"two URLs", []string{"http://a/", "http://b/"}, "exactly one URL"},
		{"not http", []string{"ftp://a/"}, "not an http(s) URL"},
		{"no host", []string{"http:///x"}, "not an http(s) URL"},
		{"header without colon", []string{"-H", "X-Bad", "http://a/"}, "want 'Name: value'"},
		{"zero timeout", []string{"-timeout", "0s", "http://a/"}, "must be positive"},
		{"unknown flag", []string{"-X", "POST", "http://a/"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, _, err := runGet(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}
