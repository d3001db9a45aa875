// Package health tracks a workload's lifecycle for the Kubernetes probes: liveness
// says the process runs; readiness is 503 until start-up completes and again while
// draining. Readiness never looks at upstreams, so one slow dependency cannot take a
// whole chain out of its Services.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"
)

// Phase is the lifecycle position.
type Phase int32

const (
	Starting Phase = iota
	Ready
	Draining
)

func (p Phase) String() string {
	switch p {
	case Ready:
		return "ready"
	case Draining:
		return "draining"
	default:
		return "starting"
	}
}

// State is safe for concurrent use. The zero value is Starting.
type State struct {
	phase atomic.Int32
	check atomic.Pointer[func(context.Context) error]
}

// CheckTimeout bounds one readiness check.
const CheckTimeout = 2 * time.Second

// SetCheck adds a condition to readiness: while Ready, /readyz also runs fn and is
// 503 when it fails. It is for a workload's own store (user-service's database), never
// for an upstream.
func (s *State) SetCheck(fn func(context.Context) error) { s.check.Store(&fn) }

func (s *State) Set(p Phase)   { s.phase.Store(int32(p)) }
func (s *State) Phase() Phase  { return Phase(s.phase.Load()) }
func (s *State) IsReady() bool { return s.Phase() == Ready }

// Identity is echoed in probe bodies so a person can tell which pod answered.
type Identity struct {
	Service  string `json:"service"`
	Version  string `json:"version"`
	Instance string `json:"instance"`
}

// LiveHandler answers 200 while the process can serve HTTP at all.
func LiveHandler(id Identity) http.Handler {
	body := mustJSON(map[string]any{"status": "alive", "service": id.Service, "version": id.Version, "instance": id.Instance})
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, body)
	})
}

// ReadyHandler answers 200 when Ready and 503 otherwise. extra adds fields to the body
// (the fault injector reports "sick" there: a sick instance stays Ready on purpose).
func ReadyHandler(s *State, id Identity, extra func() map[string]any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := s.Phase()
		m := map[string]any{"status": p.String(), "service": id.Service, "version": id.Version, "instance": id.Instance}
		if extra != nil {
			for k, v := range extra() {
				m[k] = v
			}
		}
		code := http.StatusOK
		if p != Ready {
			code = http.StatusServiceUnavailable
		} else if fn := s.check.Load(); fn != nil {
			ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
			err := (*fn)(ctx)
			cancel()
			if err != nil {
				code, m["status"], m["reason"] = http.StatusServiceUnavailable, "unavailable", err.Error()
			}
		}
		writeJSON(w, code, mustJSON(m))
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return append(b, '\n')
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
