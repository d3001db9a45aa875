package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
)

const (
	maxBody        = 1 << 20
	maxUsernameLen = 64
)

type usersHandler struct {
	store   Store
	version string
}

// userInput is the only shape a client may send: id and version are the server's.
type userInput struct {
	Username *string `json:"username"`
}

func (h *usersHandler) list(w http.ResponseWriter, r *http.Request) {
	users, err := h.store.List(r.Context())
	if err != nil {
		problem.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	httpserver.WriteJSON(w, r, http.StatusOK, users)
}

func (h *usersHandler) get(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok {
		return
	}
	u, err := h.store.Get(r.Context(), id)
	if !h.storeOK(w, r, id, err) {
		return
	}
	httpserver.WriteJSON(w, r, http.StatusOK, u)
}

func (h *usersHandler) create(w http.ResponseWriter, r *http.Request) {
	name, ok := decodeUsername(w, r)
	if !ok {
		return
	}
	u, err := h.store.Create(r.Context(), name, h.version)
	if !h.storeOK(w, r, 0, err) {
		return
	}
	w.Header().Set("Location", "/api/users/"+strconv.FormatInt(u.ID, 10))
	httpserver.WriteJSON(w, r, http.StatusCreated, u)
}

func (h *usersHandler) update(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok {
		return
	}
	name, ok := decodeUsername(w, r)
	if !ok {
		return
	}
	u, err := h.store.Update(r.Context(), id, name, h.version)
	if !h.storeOK(w, r, id, err) {
		return
	}
	httpserver.WriteJSON(w, r, http.StatusOK, u)
}

func (h *usersHandler) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok {
		return
	}
	if !h.storeOK(w, r, id, h.store.Delete(r.Context(), id)) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *usersHandler) storeOK(w http.ResponseWriter, r *http.Request, id int64, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrNotFound):
		problem.Error(w, r, http.StatusNotFound, fmt.Sprintf("no user with id %d", id))
	default:
		problem.Error(w, r, http.StatusInternalServerError, "store: "+err.Error())
	}
	return false
}

func parseID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	raw := chi.URLParam(r, "id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		problem.Error(w, r, http.StatusBadRequest, fmt.Sprintf("id %q must be a positive integer", raw))
		return 0, false
	}
	return id, true
}

// decodeUsername enforces the body rules: JSON content type (415), at most 1 MiB
// (413), one JSON object with only known fields (400), a username of 1-64 characters
// without control characters (400).
func decodeUsername(w http.ResponseWriter, r *http.Request) (string, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		problem.Error(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json", r.Header.Get("Content-Type")))
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

// parseUserInput is the pure part of decoding, fuzzed on its own.
func parseUserInput(body []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var in userInput
	if err := dec.Decode(&in); err != nil {
		if errors.Is(err, io.EOF) {
			return "", errors.New("body is empty: send {\"username\":\"...\"}")
		}
		return "", fmt.Errorf("malformed JSON: %v", err)
	}
	if dec.More() {
		return "", errors.New("malformed JSON: more than one value in the body")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", errors.New("malformed JSON: trailing data after the object")
	}
	if in.Username == nil {
		return "", errors.New("username is required")
	}
	name := *in.Username
	switch {
	case strings.TrimSpace(name) == "":
		return "", errors.New("username must not be empty")
	case utf8.RuneCountInString(name) > maxUsernameLen:
		return "", fmt.Errorf("username is %d characters; the maximum is %d", utf8.RuneCountInString(name), maxUsernameLen)
	case !utf8.ValidString(name):
		return "", errors.New("username is not valid UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", errors.New("username must not contain control characters")
	}
	return name, nil
}
