package containers

import (
	"net/http"
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
