// Package userstore keeps user-service's records. One Store interface, two backends:
// Memory (the embedded default, bounded) and Postgres (shared by every version of
// user-service, so a canary's writes are visible to the stable version and survive
// restarts). Both pass the contract suite in storetest.
package userstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"
)

// User is one record. Version is the SERVICE_VERSION of the instance that last wrote
// it; Rev counts writes and is the record's entity tag.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Version  string `json:"version"`
	Rev      int64  `json:"-"`
}

// ETag is the strong entity tag of this revision of the record.
func (u User) ETag() string { return `"` + strconv.FormatInt(u.Rev, 10) + `"` }

// Errors a Store returns; the handler maps each to one status code.
var (
	ErrNotFound     = errors.New("user not found")                                    // 404
	ErrPrecondition = errors.New("the user's current revision does not match")        // 412
	ErrKeyReused    = errors.New("idempotency key was used with a different request") // 422
	ErrFull         = errors.New("store is full")                                     // 507
	ErrKeysFull     = errors.New("idempotency keys are at their limit")               // 507
	ErrUnavailable  = errors.New("store unavailable")                                 // 503
)

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// NewUser is a create request. With a Key, a second Create with the same Key and
// Fingerprint returns the first one's user instead of creating another; the same Key
// with another Fingerprint is ErrKeyReused. Keys expire after IdempotencyTTL.
type NewUser struct {
	Username    string
	Version     string
	Key         string
	Fingerprint []byte
}

// Match is an If-Match precondition. A nil *Match matches any existing record;
// otherwise the record's Rev must be one of Revs (an empty list never matches).
type Match struct{ Revs []int64 }

func (m *Match) matches(rev int64) bool { return m == nil || slices.Contains(m.Revs, rev) }

// Store is the persistence boundary.
type Store interface {
	// List returns at most limit users with id > after, in id order, and whether
	// more follow. It costs O(limit), not O(table).
	List(ctx context.Context, after int64, limit int) (users []User, more bool, err error)
	Get(ctx context.Context, id int64) (User, error)
	// Create stores a new user; replayed reports an idempotent replay.
	Create(ctx context.Context, in NewUser) (u User, replayed bool, err error)
	Update(ctx context.Context, id int64, username, version string, m *Match) (User, error)
	Delete(ctx context.Context, id int64, m *Match) error
	// Ready reports whether the store can serve (readiness probe).
	Ready(ctx context.Context) error
}
