package userstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Memory is the embedded default: a map behind a mutex plus the ids in order (ids only
// grow, so appending keeps them sorted and a page is a binary search and a walk). It
// holds at most MaxUsers users and MaxKeys idempotency keys of the last IdempotencyTTL,
// so a load test cannot push the process past its memory limit: a full store answers
// ErrFull, a full key table ErrKeysFull. The bounds are separate because they fill
// separately: keys outlive the users they created (a user deleted at once keeps its key
// for a day).
type Memory struct {
	limits MemoryLimits
	now    func() time.Time

	mu     sync.RWMutex
	nextID int64
	users  map[int64]User
	ids    []int64             // sorted
	keys   map[[32]byte]memKey // by SHA-256 of the key: 32 bytes whatever the key's length
	order  [][32]byte          // keys by creation time, for expiry
}

// MemoryLimits bound a Memory store (USER_STORE_MAX_USERS and
// USER_STORE_MAX_IDEMPOTENCY_KEYS).
type MemoryLimits struct {
	Users int
	Keys  int
}

// memKey is kept small: at the caps there are as many keys as users.
type memKey struct {
	fp      [32]byte
	user    User // shares its strings with the users map
	created int64
}

// NewMemory returns an empty store within limits; now is the clock (nil: time.Now) that
// idempotency keys expire by.
func NewMemory(limits MemoryLimits, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{limits: limits, now: now, users: map[int64]User{}, keys: map[[32]byte]memKey{}}
}

func (s *Memory) Ready(context.Context) error { return nil }

func (s *Memory) List(_ context.Context, after int64, limit int) ([]User, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, _ := slices.BinarySearch(s.ids, after+1)
	end := min(i+limit, len(s.ids))
	out := make([]User, 0, end-i)
	for _, id := range s.ids[i:end] {
		out = append(out, s.users[id])
	}
	return out, end < len(s.ids), nil
}

func (s *Memory) Get(_ context.Context, id int64) (User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, ErrNotFound
	}
	return u, nil
}

func (s *Memory) Create(_ context.Context, in NewUser) (User, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var kh [32]byte
	if in.Key != "" {
		kh = sha256.Sum256([]byte(in.Key))
		s.expireKeys(now)
		if k, ok := s.keys[kh]; ok {
			if k.fp != sha256.Sum256(in.Fingerprint) {
				return User{}, false, ErrKeyReused
			}
			return k.user, true, nil
		}
		if len(s.keys) >= s.limits.Keys {
			oldest := time.Unix(0, s.keys[s.order[0]].created).Add(IdempotencyTTL).Sub(now)
			return User{}, false, fmt.Errorf("%w: %d keys of the last %s are remembered, the USER_STORE_MAX_IDEMPOTENCY_KEYS limit; "+
				"create without an Idempotency-Key, retry in %s (when the oldest key expires), or raise USER_STORE_MAX_IDEMPOTENCY_KEYS",
				ErrKeysFull, len(s.keys), IdempotencyTTL, oldest.Round(time.Second))
		}
	}
	if len(s.users) >= s.limits.Users {
		return User{}, false, fmt.Errorf("%w: it holds %d users, the USER_STORE_MAX_USERS limit; delete users or raise USER_STORE_MAX_USERS",
			ErrFull, len(s.users))
	}
	s.nextID++
	u := User{ID: s.nextID, Username: in.Username, Version: in.Version, Rev: 1}
	s.users[u.ID] = u
	s.ids = append(s.ids, u.ID)
	if in.Key != "" {
		s.keys[kh] = memKey{fp: sha256.Sum256(in.Fingerprint), user: u, created: now.UnixNano()}
		s.order = append(s.order, kh)
	}
	return u, false, nil
}

// expireKeys drops keys older than IdempotencyTTL (oldest first).
func (s *Memory) expireKeys(now time.Time) {
	n := 0
	for _, k := range s.order {
		e, ok := s.keys[k]
		if ok && now.Sub(time.Unix(0, e.created)) < IdempotencyTTL {
			break
		}
		if ok {
			delete(s.keys, k)
		}
		n++
	}
	s.order = s.order[n:]
}

func (s *Memory) Update(_ context.Context, id int64, username, version string, m *Match) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.users[id]
	if !ok {
		return User{}, ErrNotFound
	}
	if !m.matches(cur.Rev) {
		return User{}, ErrPrecondition
	}
	u := User{ID: id, Username: username, Version: version, Rev: cur.Rev + 1}
	s.users[id] = u
	return u, nil
}

func (s *Memory) Delete(_ context.Context, id int64, m *Match) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.users[id]
	if !ok {
		return ErrNotFound
	}
	if !m.matches(cur.Rev) {
		return ErrPrecondition
	}
	delete(s.users, id)
	if i, found := slices.BinarySearch(s.ids, id); found {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
	return nil
}
