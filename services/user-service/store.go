package main

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// User is one record. Version is the SERVICE_VERSION of the instance that last wrote it.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Version  string `json:"version"`
}

// ErrNotFound is returned for an unknown id.
var ErrNotFound = errors.New("user not found")

// Store is the persistence boundary; a database backend implements the same methods.
type Store interface {
	List(ctx context.Context) ([]User, error)
	Get(ctx context.Context, id int64) (User, error)
	Create(ctx context.Context, username, version string) (User, error)
	Update(ctx context.Context, id int64, username, version string) (User, error)
	Delete(ctx context.Context, id int64) error
}

// MemoryStore is the default Store: a map behind a mutex, ids never reused.
type MemoryStore struct {
	mu     sync.RWMutex
	nextID int64
	users  map[int64]User
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{users: map[int64]User{}} }

func (s *MemoryStore) List(context.Context) ([]User, error) {
	s.mu.RLock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b User) int { return int(a.ID - b.ID) })
	return out, nil
}

func (s *MemoryStore) Get(_ context.Context, id int64) (User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, ErrNotFound
	}
	return u, nil
}

func (s *MemoryStore) Create(_ context.Context, username, version string) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	u := User{ID: s.nextID, Username: username, Version: version}
	s.users[u.ID] = u
	return u, nil
}

func (s *MemoryStore) Update(_ context.Context, id int64, username, version string) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[id]; !ok {
		return User{}, ErrNotFound
	}
	u := User{ID: id, Username: username, Version: version}
	s.users[id] = u
	return u, nil
}

func (s *MemoryStore) Delete(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[id]; !ok {
		return ErrNotFound
	}
	delete(s.users, id)
	return nil
}
