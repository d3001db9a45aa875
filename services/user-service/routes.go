package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/workload"
	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

// NewServer is user-service's public API. Readiness follows the store: /readyz is 503
// until the database answers and its migrations are applied, and while it is lost.
func NewServer(k *workload.Kit, store userstore.Store) http.Handler {
	k.Health.SetCheck(store.Ready)
	h := &usersHandler{store: store, version: k.Common.ServiceVersion, logger: k.Logger}
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
