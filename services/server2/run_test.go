package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestRun boots the real run(): serves, answers healthcheck, exits cleanly on cancel.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	env := map[string]string{"PORT": "0", "ADMIN_PORT": "0", "GRPC_PORT": "0", "LISTEN_HOST": "127.0.0.1", "DRAIN_DELAY": "0s", "HOSTNAME": "h1"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"server2"}, envOf(env), pw, io.Discard); pw.Close() }()

	var addr string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var m map[string]string
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "serving" {
			addr = m["public"]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" {
		t.Fatal("no serving line")
	}
	resp, err := http.Get("http://" + addr + "/server2/end")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()

	_, port, _ := net.SplitHostPort(addr)
	var out strings.Builder
	if err := run(ctx, []string{"server2", "healthcheck"}, envOf(map[string]string{"PORT": port}), &out, io.Discard); err != nil {
		t.Fatalf("healthcheck: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), " 200 ") {
		t.Errorf("healthcheck printed %q", out.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	// Nothing listens any more: healthcheck fails.
	if err := run(context.Background(), []string{"server2", "healthcheck"}, envOf(map[string]string{"PORT": port}), io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck passed against a stopped server")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want []string
		not  []string // said of a value that failed to parse, it would mislead
	}{
		{map[string]string{"SERVICE_VERSION": "v 2", "PORT": "9090"}, nil, []string{"SERVICE_VERSION", "admin port must differ"}, nil},
		{map[string]string{"FAULT_ERROR_RATE": "120"}, nil, []string{"FAULT_ERROR_RATE"}, nil},
		{map[string]string{"UPSTREAM_TIMEOUT": "soon"}, nil, []string{"UPSTREAM_TIMEOUT"}, nil},
		{map[string]string{"GRPC_PORT": "70000"}, nil, []string{"GRPC_PORT"}, nil},
		{nil, []string{"server2", "serve-forever"}, []string{"unknown argument"}, nil},
		// A value that does not parse does not hide the others' problems.
		{map[string]string{"LOG_LEVEL": "loud", "PORT": "70000", "ADMIN_PORT": "-1"}, nil,
			[]string{`LOG_LEVEL="loud"`, "PORT=70000", "ADMIN_PORT=-1"}, nil},
		{map[string]string{"UPSTREAM_TIMEOUT": "soon", "FAULT_ERROR_RATE": "120", "FAULT_LATENCY": "p50=fast"}, nil,
			[]string{`UPSTREAM_TIMEOUT="soon"`, "FAULT_ERROR_RATE", `FAULT_LATENCY="p50=fast"`}, []string{"UPSTREAM_TIMEOUT=0s"}},
	} {
		args := tc.args
		if args == nil {
			args = []string{"server2"}
		}
		err := run(context.Background(), args, envOf(tc.env), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%v %v: no error", tc.env, tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.env, err, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(err.Error(), n) {
				t.Errorf("%v: error %q says %q", tc.env, err, n)
			}
		}
	}
}
