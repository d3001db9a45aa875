package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// NewServer is server2's public API.
func NewServer(k *workload.Kit) http.Handler {
	r := k.Router()
	r.Group(func(r chi.Router) {
		r.Use(k.Faults.Middleware)
		r.Method(http.MethodGet, "/server2/end", handleEnd(k))
	})
	return r
}
