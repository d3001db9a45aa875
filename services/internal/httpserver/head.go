package httpserver

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// getHead routes a HEAD request that has no HEAD route of its own to the GET route of
// the same path (RFC 9110 §9.3.2); net/http drops the body. It does what chi's
// middleware.GetHead does, written here because importing chi's middleware package links
// net/http/pprof (its Profiler) into every workload: +0.55 MB, which took user-service's
// image past the 15 MiB cap, and a package whose init registers /debug/pprof on
// http.DefaultServeMux has no place in a reference workload. TestWorkloadsLinkNoProfiler
// keeps it out.
func getHead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		rctx := chi.RouteContext(r.Context())
		if rctx == nil || rctx.Routes == nil {
			next.ServeHTTP(w, r)
			return
		}
		path := rctx.RoutePath
		if path == "" {
			path = r.URL.RawPath
			if path == "" {
				path = r.URL.Path
			}
		}
		if !rctx.Routes.Match(chi.NewRouteContext(), http.MethodHead, path) {
			rctx.RouteMethod = http.MethodGet
			rctx.RoutePath = path
		}
		next.ServeHTTP(w, r)
	})
}
