package userstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/user-service/userstore"
	"github.com/meshdemo/meshdemo/services/user-service/userstore/storetest"
)

func TestMemoryContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, now func() time.Time) userstore.Store { return userstore.NewMemory(1000, now) })
}

// TestMemoryCap: a full store refuses creates instead of growing; deleting frees room.
func TestMemoryCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := userstore.NewMemory(3, nil)
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

// TestMemoryKeyCap: idempotency keys are bounded too, and expired ones make room.
func TestMemoryKeyCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := storetest.NewClock()
	s := userstore.NewMemory(2, c.Now)
	for _, k := range []string{"a", "b"} {
		u, _, err := s.Create(ctx, userstore.NewUser{Username: k, Version: "v1", Key: k})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, u.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Create(ctx, userstore.NewUser{Username: "c", Version: "v1", Key: "c"}); !errors.Is(err, userstore.ErrFull) {
		t.Fatalf("third live key: %v", err)
	}
	c.Advance(userstore.IdempotencyTTL)
	if _, _, err := s.Create(ctx, userstore.NewUser{Username: "c", Version: "v1", Key: "c"}); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
}
