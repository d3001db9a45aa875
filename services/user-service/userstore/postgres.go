package userstore

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Defaults of the PostgreSQL store: OpenPostgres uses them for the settings a
// PostgresConfig leaves zero, and user-service starts its configuration from them,
// so they are written here only.
const (
	DefaultMaxConns         = 10
	DefaultConnectTimeout   = 3 * time.Second
	DefaultStatementTimeout = 5 * time.Second
)

// PostgresConfig configures the PostgreSQL store.
type PostgresConfig struct {
	URL              PostgresURL
	MaxConns         int32         // pool size
	ConnectTimeout   time.Duration // per new connection
	StatementTimeout time.Duration // server-side statement_timeout, and (with ConnectTimeout) each call's deadline
	Now              func() time.Time
	Logger           *slog.Logger
}

// PostgresURL is a parsed DATABASE_URL (postgres:// or postgresql://, anything pgx
// accepts). It is parsed once, where the configuration is read, and OpenPostgres
// builds the pool from the parsed value. The zero value is "no database".
type PostgresURL struct {
	pool *pgxpool.Config // as pgx parsed it; OpenPostgres changes a copy
}

// ParsePostgresURL parses a DATABASE_URL without connecting. Its errors never repeat
// the URL's password.
func ParsePostgresURL(raw string) (PostgresURL, error) {
	// url.Parse's error quotes the URL whole, password included: it is not repeated.
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return PostgresURL{}, errors.New("must be a postgres:// URL")
	}
	pc, err := pgxpool.ParseConfig(raw) // pgconn's ParseConfigError shows the URL with the password masked
	if err != nil {
		return PostgresURL{}, err
	}
	return PostgresURL{pool: pc}, nil
}

// UnmarshalText lets caarlos0/env parse DATABASE_URL; errors name the variable (env's
// own wrapping names only the Go field) and leave its value out.
func (p *PostgresURL) UnmarshalText(b []byte) error {
	v, err := ParsePostgresURL(string(b))
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	*p = v
	return nil
}

// IsZero reports whether no URL was given.
func (p PostgresURL) IsZero() bool { return p.pool == nil }

// Postgres is the shared store. It serves nothing (ErrUnavailable) until Migrate has
// succeeded once; every call is bounded by the caller's context and by
// ConnectTimeout+StatementTimeout, so a lost database is an error, never a hang.
type Postgres struct {
	pool     *pgxpool.Pool
	cfg      PostgresConfig
	migrated atomic.Bool

	// probe is readiness's own connection, outside the pool: a pool that slow
	// statements keep busy is not a database that is down, and a probe queued behind
	// user traffic would make every replica unready over one slow query.
	probeMu  sync.Mutex
	probe    *pgx.Conn
	probeCfg *pgx.ConnConfig
}

// OpenPostgres builds the pool; it does not connect (connections are made on demand,
// so a process starts while its database is still coming up). Every pgx setting the
// store depends on is set here.
func OpenPostgres(cfg PostgresConfig) (*Postgres, error) {
	if cfg.URL.IsZero() {
		return nil, errors.New("DATABASE_URL: not set")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pc := cfg.URL.pool.Copy()
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	pc.ConnConfig.RuntimeParams["application_name"] = "user-service"
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	probeCfg := pc.ConnConfig.Copy()
	probeCfg.RuntimeParams["application_name"] = "user-service-readiness"
	return &Postgres{pool: pool, cfg: cfg, probeCfg: probeCfg}, nil
}

// Close releases the pool and readiness's connection.
func (s *Postgres) Close() {
	s.pool.Close()
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probe != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.probe.Close(ctx)
		s.probe = nil
	}
}

// Pool is the underlying pool (benchmarks and tests seed through it).
func (s *Postgres) Pool() *pgxpool.Pool { return s.pool }

// Migrate applies the embedded migrations under a PostgreSQL advisory lock, so
// instances of several versions starting together apply them once.
func (s *Postgres) Migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	if err := migrate(ctx, db); err != nil {
		return err
	}
	s.migrated.Store(true)
	return nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	// Poll for the lock every second for up to five minutes (goose's default polls every 5 s).
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

// Start migrates in the background, retrying until it succeeds or ctx ends, then
// purges expired idempotency keys every 10 minutes. Readiness stays false until the
// first migration succeeded.
func (s *Postgres) Start(ctx context.Context) {
	go func() {
		backoff := 250 * time.Millisecond
		for {
			err := s.Migrate(ctx)
			if err == nil {
				s.cfg.Logger.Info("database ready: migrations applied")
				break
			}
			s.cfg.Logger.Warn("database not ready; retrying", "err", err, "in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			if n, err := s.PurgeKeys(ctx); err != nil {
				s.cfg.Logger.Warn("purging idempotency keys", "err", err)
			} else if n > 0 {
				s.cfg.Logger.Info("purged expired idempotency keys", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// PurgeKeys deletes idempotency keys older than IdempotencyTTL.
func (s *Postgres) PurgeKeys(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at <= $1`, s.cfg.Now().Add(-IdempotencyTTL))
	return tag.RowsAffected(), s.wrap(err)
}

func (s *Postgres) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.ConnectTimeout+s.cfg.StatementTimeout)
}

// wrap turns every database error into ErrUnavailable (the handler answers 503 with
// no driver text), keeping the cause for the log.
func (s *Postgres) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (s *Postgres) ready() error {
	if !s.migrated.Load() {
		return fmt.Errorf("%w: migrations not applied yet", ErrUnavailable)
	}
	return nil
}

// Ready is true once migrations are applied and while the database answers.
func (s *Postgres) Ready(ctx context.Context) error {
	if err := s.ready(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		return fmt.Errorf("%w: database does not answer", ErrUnavailable)
	}
	return nil
}

// ping asks the database on readiness's own connection, made (again) when it has none:
// it never waits for a pooled connection. One probe runs at a time; a broken
// connection is dropped, so the next probe dials afresh.
func (s *Postgres) ping(ctx context.Context) error {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probe == nil || s.probe.IsClosed() {
		c, err := pgx.ConnectConfig(ctx, s.probeCfg)
		if err != nil {
			return err
		}
		s.probe = c
	}
	if err := s.probe.Ping(ctx); err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = s.probe.Close(closeCtx)
		s.probe = nil
		return err
	}
	return nil
}

const userCols = `id, username, version, rev`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Username, &u.Version, &u.Rev)
	return u, err
}

func (s *Postgres) List(ctx context.Context, after int64, limit int) ([]User, bool, error) {
	if err := s.ready(); err != nil {
		return nil, false, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users WHERE id > $1 ORDER BY id LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, false, s.wrap(err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, false, s.wrap(err)
	}
	if len(users) > limit {
		return users[:limit], true, nil
	}
	return users, false, nil
}

func (s *Postgres) Get(ctx context.Context, id int64) (User, error) {
	if err := s.ready(); err != nil {
		return User{}, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, s.wrap(err)
}

func (s *Postgres) Create(ctx context.Context, in NewUser) (User, bool, error) {
	if err := s.ready(); err != nil {
		return User{}, false, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	const insert = `INSERT INTO users (username, version) VALUES ($1, $2) RETURNING ` + userCols
	if in.Key == "" {
		u, err := scanUser(s.pool.QueryRow(ctx, insert, in.Username, in.Version))
		return u, false, s.wrap(err)
	}
	var (
		u        User
		replayed bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		now := s.cfg.Now()
		// Claim the key, or take over an expired one. A concurrent request with the
		// same key waits here on the primary key until this transaction ends.
		tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (key, fingerprint, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at,
				user_id = NULL, username = NULL, version = NULL, rev = NULL
			WHERE idempotency_keys.created_at <= $4`, in.Key, in.Fingerprint, now, now.Add(-IdempotencyTTL))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 { // a live key: replay or refuse
			var fp []byte
			var id, rev *int64
			var name, ver *string
			if err := tx.QueryRow(ctx, `SELECT fingerprint, user_id, username, version, rev FROM idempotency_keys WHERE key = $1`, in.Key).
				Scan(&fp, &id, &name, &ver, &rev); err != nil {
				return err
			}
			if !bytes.Equal(fp, in.Fingerprint) {
				return ErrKeyReused
			}
			if id == nil {
				return errors.New("idempotency key row without its user")
			}
			u, replayed = User{ID: *id, Username: *name, Version: *ver, Rev: *rev}, true
			return nil
		}
		if u, err = scanUser(tx.QueryRow(ctx, insert, in.Username, in.Version)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE idempotency_keys SET user_id = $2, username = $3, version = $4, rev = $5 WHERE key = $1`,
			in.Key, u.ID, u.Username, u.Version, u.Rev)
		return err
	})
	if errors.Is(err, ErrKeyReused) {
		return User{}, false, err
	}
	if err != nil {
		return User{}, false, s.wrap(err)
	}
	return u, replayed, nil
}

// revs is the If-Match list as a query parameter; NULL means unconditional.
func revs(m *Match) []int64 {
	if m == nil {
		return nil
	}
	if m.Revs == nil {
		return []int64{}
	}
	return m.Revs
}

func (s *Postgres) Update(ctx context.Context, id int64, username, version string, m *Match) (User, error) {
	if err := s.ready(); err != nil {
		return User{}, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := scanUser(s.pool.QueryRow(ctx, `UPDATE users SET username = $2, version = $3, rev = rev + 1, updated_at = now()
		WHERE id = $1 AND ($4::bigint[] IS NULL OR rev = ANY($4)) RETURNING `+userCols, id, username, version, revs(m)))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, s.missOrMismatch(ctx, id)
	}
	return u, s.wrap(err)
}

func (s *Postgres) Delete(ctx context.Context, id int64, m *Match) error {
	if err := s.ready(); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE id = $1 AND ($2::bigint[] IS NULL OR rev = ANY($2))`, id, revs(m))
	if err != nil {
		return s.wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return s.missOrMismatch(ctx, id)
	}
	return nil
}

// missOrMismatch tells why a conditional write touched no row.
func (s *Postgres) missOrMismatch(ctx context.Context, id int64) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, id).Scan(&exists); err != nil {
		return s.wrap(err)
	}
	if exists {
		return ErrPrecondition
	}
	return ErrNotFound
}
