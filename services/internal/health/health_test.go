package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestReadyCheck: a check holds a Ready instance at 503 while it fails, and is not run
// (nor able to make it ready) while starting or draining.
func TestReadyCheck(t *testing.T) {
	t.Parallel()
	var s State
	var failing atomic.Bool
	var calls atomic.Int32
	s.SetCheck(func(ctx context.Context) error {
		calls.Add(1)
		if _, ok := ctx.Deadline(); !ok {
			t.Error("check without a deadline")
		}
		if failing.Load() {
			return errors.New("database does not answer")
		}
		return nil
	})
	h := ReadyHandler(&s, Identity{Service: "x"}, nil)
	probe := func() (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	if code, m := probe(); code != 503 || m["status"] != "starting" || calls.Load() != 0 {
		t.Fatalf("starting: %d %v (calls %d)", code, m, calls.Load())
	}
	s.Set(Ready)
	if code, m := probe(); code != 200 || m["status"] != "ready" {
		t.Fatalf("ready: %d %v", code, m)
	}
	failing.Store(true)
	if code, m := probe(); code != 503 || m["status"] != "unavailable" || m["reason"] != "database does not answer" {
		t.Fatalf("failing check: %d %v", code, m)
	}
	failing.Store(false)
	if code, _ := probe(); code != 200 {
		t.Fatalf("recovered: %d", code)
	}
	s.Set(Draining)
	if code, m := probe(); code != 503 || m["status"] != "draining" {
		t.Fatalf("draining: %d %v", code, m)
	}
}
