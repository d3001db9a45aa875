package containers

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

type probeBody struct {
	Status   string `json:"status"`
	Service  string `json:"service"`
	Version  string `json:"version"`
	Instance string `json:"instance"`
	Sick     *bool  `json:"sick"`
}

// TestProbes checks /healthz and /readyz on every container's public port.
func TestProbes(t *testing.T) {
	s := need(t)
	for _, name := range matrix.WorkloadNames() {
		w := s.w[name]
		t.Run(name, func(t *testing.T) {
			var live, ready probeBody
			get(t, w.public+"/healthz", nil).expect(t, http.StatusOK).decode(t, &live)
			get(t, w.public+"/readyz", nil).expect(t, http.StatusOK).decode(t, &ready)
			if ready.Status != "ready" || ready.Service != name || ready.Version != w.version || ready.Instance != w.hostname {
				t.Errorf("/readyz %+v, want ready %s/%s@%s", ready, name, w.version, w.hostname)
			}
			if ready.Sick == nil || *ready.Sick {
				t.Errorf("/readyz sick = %v, want false", ready.Sick)
			}
			if live.Service != name {
				t.Errorf("/healthz %+v, want service %s", live, name)
			}
		})
	}
}

// TestAdminPort checks the admin port of every container: metrics in the Prometheus
// text format, the fault switches, and a clean split between admin and public routes.
func TestAdminPort(t *testing.T) {
	s := need(t)
	for _, name := range matrix.WorkloadNames() {
		w := s.w[name]
		t.Run(name, func(t *testing.T) {
			// One public request first so that the request histogram has a sample.
			get(t, w.public+"/healthz", nil).expect(t, http.StatusOK)
			m := get(t, w.admin+"/metrics", nil).expect(t, http.StatusOK)
			if ct := m.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") && !strings.HasPrefix(ct, "application/openmetrics-text") {
				t.Errorf("/metrics Content-Type %q", ct)
			}
			for _, metric := range []string{"meshdemo_build_info", "meshdemo_http_server_request_duration_seconds"} {
				if !strings.Contains(string(m.body), metric) {
					t.Errorf("/metrics lacks %s", metric)
				}
			}
			var faults struct {
				Service string `json:"service"`
				Sick    bool   `json:"sick"`
			}
			get(t, w.admin+"/admin/faults", nil).expect(t, http.StatusOK).decode(t, &faults)
			if faults.Service != name || faults.Sick {
				t.Errorf("/admin/faults %+v, want service %s, not sick", faults, name)
			}
			// Metrics stay off the public port, the API off the admin port.
			get(t, w.public+"/metrics", nil).expect(t, http.StatusNotFound)
			get(t, w.admin+"/readyz", nil).expect(t, http.StatusNotFound)
		})
	}

	// The sick switch: user-service answers errors but stays Ready (so the mesh, not
	// Kubernetes, takes it out), and /readyz says sick.
	t.Run("sick switch", func(t *testing.T) {
		w := s.w["user-service"]
		t.Cleanup(func() { // t.Context() is already cancelled here
			if resp, err := hc.Post(w.admin+"/admin/healthy", "", nil); err == nil {
				resp.Body.Close()
			}
		})
		do(t, http.MethodPost, w.admin+"/admin/sick", nil, "").expect(t, http.StatusOK)
		var ready probeBody
		get(t, w.public+"/readyz", nil).expect(t, http.StatusOK).decode(t, &ready)
		if ready.Sick == nil || !*ready.Sick {
			t.Errorf("/readyz after /admin/sick: %+v, want sick true", ready)
		}
		if r := get(t, s.w["client"].public+"/client/users", nil); r.status < 500 {
			t.Errorf("a sick user-service answered %d through client, want a 5xx", r.status)
		}
		do(t, http.MethodPost, w.admin+"/admin/healthy", nil, "").expect(t, http.StatusOK)
		get(t, s.w["client"].public+"/client/users", nil).expect(t, http.StatusOK)
	})
}
