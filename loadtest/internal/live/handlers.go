package live

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/engine"
)

//go:embed assets
var assets embed.FS

// maxBody bounds a start request's body.
const maxBody = 64 << 10

func (s *Server) handleAsset(name string) http.Handler {
	body, err := fs.ReadFile(assets, "assets/"+name)
	if err != nil {
		panic(err) // embedded at build time: a missing file is a build defect
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if path.Ext(name) == ".html" {
		ctype = "text/html; charset=utf-8"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "no-cache")
		// Everything comes from this server; nothing from anywhere else.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	})
}

// stateBody answers GET /api/run.
type stateBody struct {
	Running bool `json:"running"`
	Form    Form `json:"form"`
	MaxRate int  `json:"max_rate"`
}

func (s *Server) handleState() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		body := stateBody{Running: s.running, Form: s.form, MaxRate: MaxRate}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, body)
	})
}

func (s *Server) handleStart() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f Form
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeProblem(w, http.StatusBadRequest, "request body: "+err.Error())
			return
		}
		spec, err := s.Spec(f)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, err.Error())
			return
		}
		s.mu.Lock()
		busy := s.running
		s.mu.Unlock()
		if busy { // answer before probing: a second start is refused however the target is
			writeProblem(w, http.StatusConflict, ErrBusy.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		err = engine.Probe(ctx, spec.Engine.URL, 3*time.Second)
		cancel()
		if err != nil {
			writeProblem(w, http.StatusBadGateway, fmt.Sprintf("target %s unreachable: %v", spec.Engine.URL, err))
			return
		}
		switch err := s.Start(spec, f); {
		case errors.Is(err, ErrBusy):
			writeProblem(w, http.StatusConflict, err.Error())
		case err != nil:
			writeProblem(w, http.StatusServiceUnavailable, "shutting down: "+err.Error())
		default:
			writeJSON(w, http.StatusAccepted, map[string]string{"state": StateRunning})
		}
	})
}

func (s *Server) handleStop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !s.Stop() {
			writeProblem(w, http.StatusConflict, "no run is going on")
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"state": "stopping"})
	})
}

// keepalive is how often an idle stream gets a comment line, so that proxies and
// browsers keep it open between runs.
const keepalive = 15 * time.Second

// writeWait bounds one write to a subscriber; a browser that does not read for that
// long is disconnected (the load loop never waits for it either way).
const writeWait = 10 * time.Second

// handleEvents is the Server-Sent Events stream: one "data:" line of JSON per event.
func (s *Server) handleEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recent, events, cancel := s.hub.Subscribe()
		defer cancel()
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		send := func(b []byte) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		if len(recent) == 0 {
			recent = [][]byte{s.encode(Event{State: StateIdle})}
		}
		for _, b := range recent {
			if !send(b) {
				return
			}
		}
		t := time.NewTicker(keepalive)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.ctx.Done():
				return
			case b := <-events:
				if !send(b) {
					return
				}
			case <-t.C:
				_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
				if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
					return
				}
			}
		}
	})
}
