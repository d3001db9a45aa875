package userstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/user-service/userstore"
	"github.com/meshdemo/meshdemo/services/user-service/userstore/storetest"
)

func TestMemoryContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, now func() time.Time) userstore.Store {
		return userstore.NewMemory(userstore.MemoryLimits{Users: 1000, Keys: 1000}, now)
	})
}

// TestMemoryCap: a full store refuses creates instead of growing; deleting frees room.
func TestMemoryCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := userstore.NewMemory(userstore.MemoryLimits{Users: 3, Keys: 3}, nil)
	for range 3 {
		if _, _, err := s.Create(ctx, userstore.NewUser{Username: "a", Version: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Create(ctx, userstore.NewUser{Username: "a", Version: "v1"}); !errors.Is(err, userstore.ErrFull) {
		t.Fatalf("fourth create: %v", err)
	}
	if err := s.Delete(ctx, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, userstore.NewUser{Username: "a", Version: "v1"}); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

// TestMemoryKeyCap: idempotency keys have their own bound (not the users'), and
// expired ones make room.
func TestMemoryKeyCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := storetest.NewClock()
	s := userstore.NewMemory(userstore.MemoryLimits{Users: 10, Keys: 2}, c.Now)
	for _, k := range []string{"a", "b"} {
		u, _, err := s.Create(ctx, userstore.NewUser{Username: k, Version: "v1", Key: k})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, u.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Create(ctx, userstore.NewUser{Username: "c", Version: "v1", Key: "c"}); !errors.Is(err, userstore.ErrKeysFull) {
		t.Fatalf("third live key: %v", err)
	}
	if _, _, err := s.Create(ctx, userstore.NewUser{Username: "c", Version: "v1"}); err != nil {
		t.Fatalf("a create without a key, users far from their bound: %v", err)
	}
	c.Advance(userstore.IdempotencyTTL)
	if _, _, err := s.Create(ctx, userstore.NewUser{Username: "c", Version: "v1", Key: "c"}); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
}

// TestMemoryFootprintAtCap: at the default cap (100 000) with the largest users and
// keys the API accepts (64 four-byte characters, 255-byte keys), the live heap stays
// under 32 MiB, so with the garbage collector's headroom the store fits the pod's 64 Mi
// limit. Not parallel: it measures the process heap.
func TestMemoryFootprintAtCap(t *testing.T) {
	const users = 100_000
	s := userstore.NewMemory(userstore.MemoryLimits{Users: users, Keys: users}, nil)
	name := strings.Repeat("😀", 64)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fp := make([]byte, 32)
	for i := range users {
		in := userstore.NewUser{Username: name, Version: "v1", Key: fmt.Sprintf("%0255d", i), Fingerprint: fp}
		if _, _, err := s.Create(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Create(context.Background(), userstore.NewUser{Username: name, Version: "v1"}); !errors.Is(err, userstore.ErrFull) {
		t.Fatalf("past the cap: %v", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	live := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("live heap at the cap: %.1f MiB", live)
	if live > 32 {
		t.Fatalf("live heap at the cap is %.1f MiB; more than 32 MiB leaves no room under a 64 Mi limit", live)
	}
	runtime.KeepAlive(s)
}
