package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
)

// maxUserBody matches user-service's limit, so an oversized body is refused here with
// the same 413 instead of being streamed through.
const maxUserBody = 1 << 20

func handleChain(server1 *httpclient.Upstream) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		server1.Relay(w, r, httpclient.Call{Method: http.MethodGet, Path: "/server1/server2"})
	})
}

// The user API's own headers cross the proxy both ways, so conditional requests,
// idempotent creates and pagination work through client as they do directly.
var (
	userRequestHeaders  = []string{"If-Match", "Idempotency-Key"}
	userResponseHeaders = []string{"ETag", "Link", "Location", "Idempotent-Replayed", "Retry-After"}
)

// handleUsers relays /client/users[/{id}] to user-service's /api/users[/{id}] with the
// same method, body and content type; user-service validates and answers.
func handleUsers(users *httpclient.Upstream) http.Handler {
	users = users.PassHeaders(userRequestHeaders, userResponseHeaders)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The id segment is taken still escaped, so an encoded "/" stays inside the
		// segment and user-service (which validates ids) sees what the caller sent.
		path := "/api/users"
		if chi.URLParam(r, "id") != "" {
			path += "/" + strings.TrimPrefix(r.URL.EscapedPath(), "/client/users/")
		}
		if r.URL.RawQuery != "" { // pagination: ?limit=N&after=ID
			path += "?" + r.URL.RawQuery
		}
		var body io.Reader
		if r.Method == http.MethodPost || r.Method == http.MethodPut {
			b, ok := httpserver.ReadBody(w, r, maxUserBody)
			if !ok {
				return
			}
			body = bytes.NewReader(b)
		}
		method := r.Method
		if method == http.MethodHead {
			// Ask for the GET, so the length relayed is the GET's; net/http sends no body
			// on a HEAD (a relayed HEAD would come back with none to measure).
			method = http.MethodGet
		}
		users.Relay(w, r, httpclient.Call{Method: method, Path: path, Body: body, ContentType: r.Header.Get("Content-Type")})
	})
}
