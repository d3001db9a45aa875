//go:build e2e

package suite

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

type user struct {
	ID       int    `json:"id"`
	Username string `json:"username"`
	Version  string `json:"version"`
}

// TestUsersCRUD drives user-service through the client's proxy routes: create, read, list,
// update, delete, and the errors a caller sees relayed unchanged.
func TestUsersCRUD(t *testing.T) {
	name := "e2e-" + randHex(4)
	r := send(t, http.MethodPost, "/client/users", nil, []byte(`{"username":"`+name+`"}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %s", chainStatus(r))
	}
	var created user
	decode(t, r, &created)
	if created.ID <= 0 || created.Username != name || created.Version != "v1" {
		t.Fatalf("created %+v", created)
	}
	path := fmt.Sprintf("/client/users/%d", created.ID)

	r = get(t, path, nil)
	var read user
	decode(t, r, &read)
	if r.status != http.StatusOK || read != created {
		t.Fatalf("read: %d %+v, want %+v", r.status, read, created)
	}

	// The list is paged (100 by default) and a shared database may hold many users:
	// ask for the page that starts at the new one.
	r = get(t, fmt.Sprintf("/client/users?limit=1&after=%d", created.ID-1), nil)
	var all []user
	decode(t, r, &all)
	found := false
	for _, u := range all {
		found = found || u == created
	}
	if r.status != http.StatusOK || !found {
		t.Fatalf("list (%d) lacks %+v: %s", r.status, created, r.body)
	}

	renamed := name + "-renamed"
	r = send(t, http.MethodPut, path, nil, []byte(`{"username":"`+renamed+`"}`))
	var updated user
	decode(t, r, &updated)
	if r.status != http.StatusOK || updated.ID != created.ID || updated.Username != renamed {
		t.Fatalf("update: %d %+v", r.status, updated)
	}
	if r = get(t, path, nil); !strings.Contains(string(r.body), renamed) {
		t.Fatalf("read after update: %s", r.body)
	}

	r = send(t, http.MethodDelete, path, nil, nil)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %s", chainStatus(r))
	}
	wantProblem(t, get(t, path, nil), http.StatusNotFound)
	wantProblem(t, send(t, http.MethodDelete, path, nil, nil), http.StatusNotFound)

	// Bad input is the caller's fault and says so.
	wantProblem(t, get(t, "/client/users/not-a-number", nil), http.StatusBadRequest)
	wantProblem(t, send(t, http.MethodPost, "/client/users", nil, []byte(`{"username":`)), http.StatusBadRequest)
}
