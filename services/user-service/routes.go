package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// NewServer is user-service's public API.
func NewServer(k *workload.Kit, store Store) http.Handler {
	h := &usersHandler{store: store, version: k.Common.ServiceVersion}
	r := k.Router()
	r.Group(func(r chi.Router) {
		r.Use(k.Faults.Middleware)
		r.Method(http.MethodGet, "/api/users", http.HandlerFunc(h.list))
		r.Method(http.MethodPost, "/api/users", http.HandlerFunc(h.create))
		r.Method(http.MethodGet, "/api/users/{id}", http.HandlerFunc(h.get))
		r.Method(http.MethodPut, "/api/users/{id}", http.HandlerFunc(h.update))
		r.Method(http.MethodDelete, "/api/users/{id}", http.HandlerFunc(h.delete))
	})
	return r
}
