// Package storetest is the contract every userstore.Store passes: the memory store,
// PostgreSQL here, and PostgreSQL in a container (e2e).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

// Clock is a settable clock for key expiry.
type Clock struct{ ns atomic.Int64 }

// NewClock starts at a fixed instant.
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Open returns a new, empty store whose keys expire by clock.
type Open func(t *testing.T, clock func() time.Time) userstore.Store

// Run runs the contract against stores made by open; each subtest gets its own store.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s userstore.Store, c *Clock)
	}{
		{"CRUD", testCRUD},
		{"Pagination", testPagination},
		{"IfMatch", testIfMatch},
		{"NoLostUpdate", testNoLostUpdate},
		{"Idempotency", testIdempotency},
		{"IdempotencyExpiry", testIdempotencyExpiry},
		{"ConcurrentIdempotentCreate", testConcurrentIdempotentCreate},
		{"ConcurrentCreates", testConcurrentCreates},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := NewClock()
			tc.fn(t, open(t, c.Now), c)
		})
	}
}

var ctx = context.Background()

func create(t *testing.T, s userstore.Store, name, version string) userstore.User {
	t.Helper()
	u, replayed, err := s.Create(ctx, userstore.NewUser{Username: name, Version: version})
	if err != nil || replayed {
		t.Fatalf("create %s: %v (replayed %v)", name, err, replayed)
	}
	return u
}

func testCRUD(t *testing.T, s userstore.Store, _ *Clock) {
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	a := create(t, s, "mick", "v1")
	b := create(t, s, "chung", "v2")
	if a.ID <= 0 || b.ID <= a.ID || a.Rev != 1 || a.Username != "mick" || a.Version != "v1" {
		t.Fatalf("created %+v then %+v", a, b)
	}
	if got, err := s.Get(ctx, a.ID); err != nil || got != a {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, a)
	}
	u, err := s.Update(ctx, a.ID, "michael", "v2", nil)
	if err != nil || u != (userstore.User{ID: a.ID, Username: "michael", Version: "v2", Rev: 2}) {
		t.Fatalf("Update = %+v, %v", u, err)
	}
	if got, _ := s.Get(ctx, a.ID); got != u {
		t.Fatalf("after update Get = %+v", got)
	}
	if u.ETag() == a.ETag() {
		t.Fatalf("ETag unchanged by an update: %s", u.ETag())
	}
	if _, err := s.Update(ctx, 999999, "x", "v1", nil); !errors.Is(err, userstore.ErrNotFound) {
		t.Fatalf("Update unknown: %v", err)
	}
	if err := s.Delete(ctx, a.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, a.ID); !errors.Is(err, userstore.ErrNotFound) {
		t.Fatalf("Get deleted: %v", err)
	}
	if err := s.Delete(ctx, a.ID, nil); !errors.Is(err, userstore.ErrNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
	// ids are never reused
	if c := create(t, s, "third", "v1"); c.ID <= b.ID {
		t.Fatalf("id %d reused (last was %d)", c.ID, b.ID)
	}
}

func testPagination(t *testing.T, s userstore.Store, _ *Clock) {
	var ids []int64
	for i := range 25 {
		ids = append(ids, create(t, s, fmt.Sprintf("u%02d", i), "v1").ID)
	}
	if err := s.Delete(ctx, ids[5], nil); err != nil {
		t.Fatal(err)
	}
	want := append(append([]int64{}, ids[:5]...), ids[6:]...)
	var got []int64
	after, pages := int64(0), 0
	for {
		page, more, err := s.List(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page) > 10 {
			t.Fatalf("page of %d", len(page))
		}
		for _, u := range page {
			got = append(got, u.ID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if pages != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d pages %v, want 3 pages %v", pages, got, want)
	}
	// A page that ends exactly at the last user says no more.
	page, more, err := s.List(ctx, want[len(want)-3], 2)
	if err != nil || len(page) != 2 || more {
		t.Fatalf("last page: %v more=%v %v", page, more, err)
	}
	page, more, err = s.List(ctx, want[len(want)-1], 10)
	if err != nil || len(page) != 0 || more {
		t.Fatalf("past the end: %v more=%v %v", page, more, err)
	}
}

func testIfMatch(t *testing.T, s userstore.Store, _ *Clock) {
	u := create(t, s, "mick", "v1")
	if _, err := s.Update(ctx, u.ID, "x", "v1", &userstore.Match{Revs: []int64{u.Rev + 1}}); !errors.Is(err, userstore.ErrPrecondition) {
		t.Fatalf("stale If-Match update: %v", err)
	}
	if _, err := s.Update(ctx, u.ID, "x", "v1", &userstore.Match{}); !errors.Is(err, userstore.ErrPrecondition) {
		t.Fatalf("empty If-Match list: %v", err)
	}
	if got, _ := s.Get(ctx, u.ID); got != u {
		t.Fatalf("a failed precondition changed the user: %+v", got)
	}
	u2, err := s.Update(ctx, u.ID, "x", "v2", &userstore.Match{Revs: []int64{7, u.Rev}})
	if err != nil || u2.Rev != u.Rev+1 {
		t.Fatalf("matching update: %+v %v", u2, err)
	}
	if err := s.Delete(ctx, u.ID, &userstore.Match{Revs: []int64{u.Rev}}); !errors.Is(err, userstore.ErrPrecondition) {
		t.Fatalf("stale If-Match delete: %v", err)
	}
	if err := s.Delete(ctx, u.ID, &userstore.Match{Revs: []int64{u2.Rev}}); err != nil {
		t.Fatalf("matching delete: %v", err)
	}
	if _, err := s.Update(ctx, u.ID, "x", "v2", &userstore.Match{Revs: []int64{u2.Rev}}); !errors.Is(err, userstore.ErrNotFound) {
		t.Fatalf("conditional update of a deleted user: %v", err)
	}
}

// testNoLostUpdate: writers race, each reading then writing with If-Match; every
// successful write is built on the one before it, so the final revision counts them.
func testNoLostUpdate(t *testing.T, s userstore.Store, _ *Clock) {
	u := create(t, s, "counter", "v1")
	const writers, tries = 8, 20
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tries {
				cur, err := s.Get(ctx, u.ID)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = s.Update(ctx, u.ID, fmt.Sprintf("w%d", w), "v1", &userstore.Match{Revs: []int64{cur.Rev}})
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, userstore.ErrPrecondition):
					conflicts.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	final, _ := s.Get(ctx, u.ID)
	if final.Rev != 1+wins.Load() || wins.Load()+conflicts.Load() != writers*tries || wins.Load() == 0 {
		t.Fatalf("rev %d after %d wins and %d conflicts", final.Rev, wins.Load(), conflicts.Load())
	}
}

func testIdempotency(t *testing.T, s userstore.Store, _ *Clock) {
	in := userstore.NewUser{Username: "mick", Version: "v1", Key: "k-1", Fingerprint: []byte("fp-a")}
	first, replayed, err := s.Create(ctx, in)
	if err != nil || replayed {
		t.Fatalf("first: %v %v", err, replayed)
	}
	// A retry through another version replays the first answer.
	retry := in
	retry.Version = "v2"
	again, replayed, err := s.Create(ctx, retry)
	if err != nil || !replayed || again != first {
		t.Fatalf("replay = %+v %v %v, want %+v", again, replayed, err, first)
	}
	// The replay is the first answer even after the user changed.
	if _, err := s.Update(ctx, first.ID, "changed", "v2", nil); err != nil {
		t.Fatal(err)
	}
	if again, _, _ := s.Create(ctx, in); again != first {
		t.Fatalf("replay after update = %+v", again)
	}
	other := in
	other.Fingerprint = []byte("fp-b")
	if _, _, err := s.Create(ctx, other); !errors.Is(err, userstore.ErrKeyReused) {
		t.Fatalf("same key, other body: %v", err)
	}
	page, _, _ := s.List(ctx, 0, 100)
	if len(page) != 1 {
		t.Fatalf("%d users after replays, want 1", len(page))
	}
	if u, replayed, err := s.Create(ctx, userstore.NewUser{Username: "mick", Version: "v1", Key: "k-2", Fingerprint: []byte("fp-a")}); err != nil || replayed || u.ID == first.ID {
		t.Fatalf("another key: %+v %v %v", u, replayed, err)
	}
}

func testIdempotencyExpiry(t *testing.T, s userstore.Store, c *Clock) {
	in := userstore.NewUser{Username: "mick", Version: "v1", Key: "exp", Fingerprint: []byte("fp")}
	first, _, err := s.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// Literal times, not the constant: the window is a day.
	c.Advance(23*time.Hour + 59*time.Minute)
	if u, replayed, _ := s.Create(ctx, in); !replayed || u != first {
		t.Fatalf("at 23 h 59 min: %+v replayed=%v, want a replay", u, replayed)
	}
	c.Advance(time.Minute) // 24 h
	u, replayed, err := s.Create(ctx, in)
	if err != nil || replayed || u.ID == first.ID {
		t.Fatalf("after 24 h the key is new: %+v replayed=%v %v", u, replayed, err)
	}
	// The renewed key holds the new user, and refuses another body.
	if again, replayed, _ := s.Create(ctx, in); !replayed || again != u {
		t.Fatalf("renewed key replays %+v (%v), want %+v", again, replayed, u)
	}
	other := in
	other.Fingerprint = []byte("other")
	if _, _, err := s.Create(ctx, other); !errors.Is(err, userstore.ErrKeyReused) {
		t.Fatalf("renewed key, other body: %v", err)
	}
}

// testConcurrentIdempotentCreate: retries racing each other create one user.
func testConcurrentIdempotentCreate(t *testing.T, s userstore.Store, _ *Clock) {
	const n = 16
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, _, err := s.Create(ctx, userstore.NewUser{Username: "once", Version: "v1", Key: "race", Fingerprint: []byte("fp")})
			if err != nil {
				t.Error(err)
			}
			ids[i] = u.ID
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow() // a failed call, reported above, is not a second user
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids %v: the key created more than one user", ids)
		}
	}
	if page, _, _ := s.List(ctx, 0, 100); len(page) != 1 {
		t.Fatalf("%d users", len(page))
	}
}

func testConcurrentCreates(t *testing.T, s userstore.Store, _ *Clock) {
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, _, err := s.Create(ctx, userstore.NewUser{Username: fmt.Sprintf("u%d-%d", w, i), Version: "v1"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	page, more, err := s.List(ctx, 0, 1000)
	if err != nil || more || len(page) != writers*each {
		t.Fatalf("%d users (more=%v, %v), want %d", len(page), more, err, writers*each)
	}
	for i := 1; i < len(page); i++ {
		if page[i].ID <= page[i-1].ID {
			t.Fatalf("not in id order at %d", i)
		}
	}
}
