package containers

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

type user struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Version  string `json:"version"`
}

// TestUsersThroughClient runs the whole CRUD cycle through client's proxy to the
// user-service container.
func TestUsersThroughClient(t *testing.T) {
	s := need(t)
	client, users := s.w["client"], s.w["user-service"]
	base := client.public + "/client/users"
	name := "ct-" + randomHex(t, 4)

	var created user
	r := do(t, http.MethodPost, base, nil, fmt.Sprintf(`{"username":%q}`, name)).expect(t, http.StatusCreated)
	r.decode(t, &created)
	if created.ID <= 0 || created.Username != name || created.Version != users.version {
		t.Fatalf("created %+v, want a positive id, username %s, version %s", created, name, users.version)
	}
	checkPath(t, r.header, client, users)
	one := fmt.Sprintf("%s/%d", base, created.ID)

	var got user
	get(t, one, nil).expect(t, http.StatusOK).decode(t, &got)
	if got != created {
		t.Errorf("GET %s = %+v, want %+v", one, got, created)
	}

	var updated user
	do(t, http.MethodPut, one, nil, fmt.Sprintf(`{"username":%q}`, name+"-renamed")).expect(t, http.StatusOK).decode(t, &updated)
	if updated.ID != created.ID || updated.Username != name+"-renamed" {
		t.Errorf("PUT answered %+v", updated)
	}

	var list []user
	get(t, base, nil).expect(t, http.StatusOK).decode(t, &list)
	found := false
	for _, u := range list {
		found = found || u == updated
	}
	if !found {
		t.Errorf("list %+v does not hold %+v", list, updated)
	}

	do(t, http.MethodDelete, one, nil, "").expect(t, http.StatusNoContent)

	r = get(t, one, nil).expect(t, http.StatusNotFound)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("404 Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	r.decode(t, &p)
	if p.Status != http.StatusNotFound || !strings.Contains(p.Detail, fmt.Sprint(created.ID)) {
		t.Errorf("404 problem %+v, want user-service's 404 about id %d, relayed unchanged", p, created.ID)
	}

	// A malformed body is rejected by user-service and relayed as is.
	do(t, http.MethodPost, base, nil, `{"username":`).expect(t, http.StatusBadRequest)
}
