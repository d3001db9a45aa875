package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// NewServer is server1's public API.
func NewServer(k *workload.Kit, server2 *httpclient.Upstream) http.Handler {
	r := k.Router()
	r.Group(func(r chi.Router) {
		r.Use(k.Faults.Middleware)
		r.Method(http.MethodGet, "/server1/server2", handleRelay(server2, "/server2/end"))
	})
	return r
}

// handleRelay answers with exactly what the upstream answered at path.
func handleRelay(up *httpclient.Upstream, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.Relay(w, r, httpclient.Call{Method: http.MethodGet, Path: path})
	})
}
