package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

type usersHandler struct {
	store   userstore.Store
	version string
	logger  *slog.Logger
}

// list answers one page: ?limit=N (1-1000, default 100) users with id > ?after, and a
// Link to the next page when more exist.
func (h *usersHandler) list(w http.ResponseWriter, r *http.Request) {
	limit, after, err := parsePage(r.URL.RawQuery)
	if err != nil {
		problem.Error(w, r, http.StatusBadRequest, err.Error())
		return
	}
	users, more, err := h.store.List(r.Context(), after, limit)
	if !h.storeOK(w, r, 0, err) {
		return
	}
	if more {
		w.Header().Set("Link", fmt.Sprintf(`</api/users?limit=%d&after=%d>; rel="next"`, limit, users[len(users)-1].ID))
	}
	httpserver.WriteJSON(w, r, http.StatusOK, users)
}

func (h *usersHandler) get(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	u, err := h.store.Get(r.Context(), id)
	if !h.storeOK(w, r, id, err) {
		return
	}
	writeUser(w, r, http.StatusOK, u)
}

// create honours Idempotency-Key: the same key and body replays the first answer
// (a mesh retry of a POST whose answer was lost creates one user).
func (h *usersHandler) create(w http.ResponseWriter, r *http.Request) {
	key, err := parseIdempotencyKey(r.Header.Values("Idempotency-Key"))
	if err != nil {
		problem.Error(w, r, http.StatusBadRequest, err.Error())
		return
	}
	name, ok := decodeUsername(w, r)
	if !ok {
		return
	}
	in := userstore.NewUser{Username: name, Version: h.version}
	if key != "" {
		in.Key, in.Fingerprint = key, fingerprint(name)
	}
	u, replayed, err := h.store.Create(r.Context(), in)
	if !h.storeOK(w, r, 0, err) {
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/api/users/"+strconv.FormatInt(u.ID, 10))
	writeUser(w, r, http.StatusCreated, u)
}

func (h *usersHandler) update(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	m, ok := ifMatch(w, r)
	if !ok {
		return
	}
	name, ok := decodeUsername(w, r)
	if !ok {
		return
	}
	u, err := h.store.Update(r.Context(), id, name, h.version, m)
	if !h.storeOK(w, r, id, err) {
		return
	}
	writeUser(w, r, http.StatusOK, u)
}

func (h *usersHandler) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	m, ok := ifMatch(w, r)
	if !ok {
		return
	}
	if !h.storeOK(w, r, id, h.store.Delete(r.Context(), id, m)) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeUser(w http.ResponseWriter, r *http.Request, code int, u userstore.User) {
	w.Header().Set("ETag", u.ETag())
	httpserver.WriteJSON(w, r, code, u)
}

// storeOK maps a store error to its status. A request whose context ended gets no
// answer (see the case below). Anything else unexpected is the database being unavailable: 503 (a mesh may retry it elsewhere) without driver text, logged
// once here.
func (h *usersHandler) storeOK(w http.ResponseWriter, r *http.Request, id int64, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, userstore.ErrNotFound):
		problem.Error(w, r, http.StatusNotFound, fmt.Sprintf("no user with id %d", id))
	case errors.Is(err, userstore.ErrPrecondition):
		problem.Error(w, r, http.StatusPreconditionFailed,
			fmt.Sprintf("user %d changed since you read it: If-Match does not match its current ETag; GET it and retry", id))
	case errors.Is(err, userstore.ErrKeyReused):
		problem.Error(w, r, http.StatusUnprocessableEntity, "this Idempotency-Key was used with a different body; use a new key for a new request")
	case r.Context().Err() != nil:
		// The caller went away (or its time ran out) while the store worked: that is no
		// database failure. Nothing is written; the kit's middleware aborts the response
		// and records 499.
		return false
	case errors.Is(err, userstore.ErrFull), errors.Is(err, userstore.ErrKeysFull):
		problem.Error(w, r, http.StatusInsufficientStorage, err.Error()) // says which limit, and what helps
	default:
		h.logger.LogAttrs(r.Context(), slog.LevelWarn, "store unavailable", slog.String("err", err.Error()))
		w.Header().Set("Retry-After", "1")
		problem.Error(w, r, http.StatusServiceUnavailable, "the user database is unavailable; try again")
	}
	return false
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := parseID(chi.URLParam(r, "id"))
	if err != nil {
		problem.Error(w, r, http.StatusBadRequest, err.Error())
		return 0, false
	}
	return id, true
}

func ifMatch(w http.ResponseWriter, r *http.Request) (*userstore.Match, bool) {
	m, err := parseIfMatch(r.Header.Values("If-Match"))
	if err != nil {
		problem.Error(w, r, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return m, true
}

// decodeUsername enforces the body rules: JSON in utf-8 (415), at most 1 MiB (413),
// then parseUserInput's rules (400).
func decodeUsername(w http.ResponseWriter, r *http.Request) (string, bool) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		problem.Error(w, r, http.StatusUnsupportedMediaType, err.Error())
		return "", false
	}
	body, ok := httpserver.ReadBody(w, r, maxBody)
	if !ok {
		return "", false
	}
	name, err := parseUserInput(body)
	if err != nil {
		problem.Error(w, r, http.StatusBadRequest, err.Error())
		return "", false
	}
	return name, true
}
