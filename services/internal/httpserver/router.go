package httpserver

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/health"
	"github.com/meshdemo/meshdemo/services/internal/problem"
)

// Probes are mounted on every public router, outside the fault injector.
type Probes struct {
	State    *health.State
	Identity health.Identity
	// Extra adds fields to /readyz's body (the sick flag).
	Extra func() map[string]any
}

// NewRouter returns the public router of a workload: the observer middleware, probes,
// HEAD on every GET route (RFC 9110 §9.3.2: GET's status and headers, no body; chi
// answers 405 otherwise), and JSON answers for unknown paths and wrong methods. The workload adds its API
// routes (inside a group carrying the fault injector) in its routes.go.
func NewRouter(o *Observer, p Probes) chi.Router {
	r := chi.NewRouter()
	r.Use(o.Middleware, getHead)
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		markUnmatched(w)
		problem.Error(w, req, http.StatusNotFound, "no route for "+req.Method+" "+req.URL.Path)
	})
	r.MethodNotAllowed(MethodNotAllowed)
	r.Method(http.MethodGet, "/healthz", health.LiveHandler(p.Identity))
	r.Method(http.MethodGet, "/readyz", health.ReadyHandler(p.State, p.Identity, p.Extra))
	return r
}

// MethodNotAllowed answers 405 with an Allow header listing the methods the route
// does serve (chi only computes it for its own default handler).
func MethodNotAllowed(w http.ResponseWriter, req *http.Request) {
	markUnmatched(w)
	var allowed []string
	if rc := chi.RouteContext(req.Context()); rc != nil && rc.Routes != nil {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if rc.Routes.Match(chi.NewRouteContext(), m, req.URL.Path) {
				allowed = append(allowed, m)
				if m == http.MethodGet {
					allowed = append(allowed, http.MethodHead) // every GET route answers HEAD
				}
			}
		}
	}
	allow := strings.Join(allowed, ", ")
	w.Header().Set("Allow", allow)
	problem.Error(w, req, http.StatusMethodNotAllowed, req.Method+" is not allowed on "+req.URL.Path+"; allowed: "+allow)
}

// NewAdminRouter serves /metrics and the workload's admin routes on the admin port,
// never on the public port.
func NewAdminRouter(metrics http.Handler, mount func(chi.Router)) chi.Router {
	r := chi.NewRouter()
	r.Use(getHead)
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		problem.Error(w, req, http.StatusNotFound, "no admin route for "+req.Method+" "+req.URL.Path)
	})
	r.MethodNotAllowed(MethodNotAllowed)
	r.Method(http.MethodGet, "/metrics", metrics)
	if mount != nil {
		mount(r)
	}
	return r
}
