package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/grpcclient"
	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// NewServer is client's public API.
func NewServer(k *workload.Kit, server1, users *httpclient.Upstream, grpcServer1 *grpcclient.Upstream) http.Handler {
	r := k.Router()
	r.Group(func(r chi.Router) {
		r.Use(k.Faults.Middleware)
		r.Method(http.MethodGet, "/client/server1", handleChain(server1))
		r.Method(http.MethodGet, "/client/grpc", handleGRPCChain(grpcServer1))
		r.Method(http.MethodGet, "/client/users", handleUsers(users))
		r.Method(http.MethodPost, "/client/users", handleUsers(users))
		r.Method(http.MethodGet, "/client/users/{id}", handleUsers(users))
		r.Method(http.MethodPut, "/client/users/{id}", handleUsers(users))
		r.Method(http.MethodDelete, "/client/users/{id}", handleUsers(users))
	})
	return r
}
