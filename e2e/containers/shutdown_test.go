package containers

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/meshdemo/meshdemo/services/headers"
)

// TestDockerStopDrainsInFlightRequest stops a container (SIGTERM, as `docker stop` and the
// kubelet do) while a request is in flight: readiness must turn 503 "draining", the
// request must still get its full answer, and the process must exit 0 well within the
// grace period. A dedicated server2 is used so the shared stack keeps running.
func TestDockerStopDrainsInFlightRequest(t *testing.T) {
	s := need(t)
	const (
		drain = 2 * time.Second
		delay = 3 * time.Second
		grace = 30 * time.Second // Kubernetes' terminationGracePeriodSeconds
	)
	w, err := startWorkload(t.Context(), "server2", s.images["server2"], nil, map[string]string{
		"SERVICE_VERSION": "v9", "DRAIN_DELAY": drain.String(), "SHUTDOWN_TIMEOUT": "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server2 logs:\n%s", containerLogs(context.Background(), w.ctr))
		}
		if err := testcontainers.TerminateContainer(w.ctr); err != nil {
			t.Errorf("terminate: %v", err)
		}
	})

	type result struct {
		resp    response
		err     error
		elapsed time.Duration
	}
	inflight := make(chan result, 1)
	sent := time.Now()
	go func() {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, w.public+"/server2/end", nil)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		req.Header.Set(headers.Fault, "server2="+"delay:"+delay.String())
		resp, err := hc.Do(req)
		if err != nil {
			inflight <- result{err: err, elapsed: time.Since(sent)}
			return
		}
		defer resp.Body.Close()
		body := readAll(resp.Body)
		inflight <- result{resp: response{status: resp.StatusCode, header: resp.Header, body: []byte(body)}, elapsed: time.Since(sent)}
	}()
	time.Sleep(500 * time.Millisecond) // the request is inside server2's delay now

	stopped := make(chan error, 1)
	stopStart := time.Now()
	go func() {
		g := grace
		stopped <- w.ctr.Stop(context.Background(), &g)
	}()

	// Readiness flips as soon as SIGTERM arrives, for the whole drain pause.
	draining := false
	probe := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(drain); time.Now().Before(deadline) && !draining; time.Sleep(50 * time.Millisecond) {
		resp, err := probe.Get(w.public + "/readyz")
		if err != nil {
			continue
		}
		body := readAll(resp.Body)
		resp.Body.Close()
		draining = resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, `"draining"`)
	}
	if !draining {
		t.Error("/readyz never answered 503 draining after SIGTERM")
	}

	r := <-inflight
	if r.err != nil {
		t.Fatalf("in-flight request failed during shutdown after %s: %v", r.elapsed, r.err)
	}
	r.resp.expect(t, http.StatusOK)
	var body server2Body
	r.resp.decode(t, &body)
	if body.Service != "server2" || body.Version != "v9" {
		t.Errorf("in-flight request got %+v", body)
	}
	if r.elapsed < delay {
		t.Errorf("request answered after %s, before its %s delay: it was cut short", r.elapsed, delay)
	}

	if err := <-stopped; err != nil {
		t.Fatalf("docker stop: %v", err)
	}
	took := time.Since(stopStart)
	t.Logf("docker stop took %s (drain %s, grace %s); request answered after %s", took.Round(time.Millisecond), drain, grace, r.elapsed.Round(time.Millisecond))
	if took >= grace {
		t.Errorf("docker stop took %s: the process outlived the %s grace period and was killed", took, grace)
	}
	if took < drain {
		t.Errorf("docker stop took %s, less than the %s drain pause", took, drain)
	}
	info, err := w.ctr.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Running || info.State.ExitCode != 0 || info.State.OOMKilled {
		t.Errorf("after docker stop: running=%v exit=%d oom=%v, want exited with 0", info.State.Running, info.State.ExitCode, info.State.OOMKilled)
	}
	if rec := waitForLog(t, w.ctr, time.Second, func(m map[string]any) bool { return m["msg"] == "draining" }); rec == nil {
		t.Error(`no "draining" log line`)
	}
}

// server2Body is server2's answer, relayed byte for byte by server1 and client.
type server2Body struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Service   string `json:"service"`
	Version   string `json:"version"`
	Instance  string `json:"instance"`
}
