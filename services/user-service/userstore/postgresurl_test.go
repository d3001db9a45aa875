package userstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

// TestPostgresDefaults: a PostgresConfig that leaves the pool's settings zero gets the
// store's defaults (the ones user-service starts its configuration from), whatever the
// URL says. No database needed: the pool connects on demand.
func TestPostgresDefaults(t *testing.T) {
	t.Parallel()
	u, err := userstore.ParsePostgresURL("postgres://u:secret@127.0.0.1:1/db?pool_max_conns=3&connect_timeout=60")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		cfg         userstore.PostgresConfig
		conns       int32
		connect     time.Duration
		statementMS string
	}{
		{"zero: defaults", userstore.PostgresConfig{URL: u}, userstore.DefaultMaxConns, userstore.DefaultConnectTimeout, "5000"},
		{"set", userstore.PostgresConfig{URL: u, MaxConns: 7, ConnectTimeout: time.Second, StatementTimeout: 2 * time.Second}, 7, time.Second, "2000"},
	} {
		s, err := userstore.OpenPostgres(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		pc := s.Pool().Config()
		s.Close()
		if pc.MaxConns != tc.conns || pc.ConnConfig.ConnectTimeout != tc.connect || pc.ConnConfig.RuntimeParams["statement_timeout"] != tc.statementMS {
			t.Errorf("%s: pool of %d, connect timeout %s, statement_timeout %s ms; want %d, %s, %s",
				tc.name, pc.MaxConns, pc.ConnConfig.ConnectTimeout, pc.ConnConfig.RuntimeParams["statement_timeout"], tc.conns, tc.connect, tc.statementMS)
		}
	}
	if _, err := userstore.OpenPostgres(userstore.PostgresConfig{}); err == nil {
		t.Error("a pool opened without a URL")
	}
}

func TestParsePostgresURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"mysql://u:secret@db/x", "postgres://u:secret@db:notaport/x", "postgres://u:secret@db/x?sslmode=sometimes", "::"} {
		if _, err := userstore.ParsePostgresURL(raw); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: %v, want an error without the password", raw, err)
		}
	}
	for _, raw := range []string{"postgres://u:secret@db/x", "postgresql://db:5432/x?sslmode=disable"} {
		if u, err := userstore.ParsePostgresURL(raw); err != nil || u.IsZero() {
			t.Errorf("%q: %v", raw, err)
		}
	}
}
