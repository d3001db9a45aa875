// Package pgtest gives tests a PostgreSQL database of their own on the throw-away
// cluster that build/postgres/with-postgres.sh starts (make test-services does), and a
// TCP proxy that can cut or stall the connection to it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable holding the cluster's admin URL.
const EnvURL = "MESHDEMO_TEST_DATABASE_URL"

// AdminURL returns the cluster URL. Without one the test skips saying why, except
// under CI=true, where a missing database is a failure: CI must run these tests.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		msg := EnvURL + " is not set: these tests need PostgreSQL; `make test-services` starts a throw-away cluster " +
			"(or run: build/postgres/with-postgres.sh go test ./...)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return u
}

// NewDatabase creates an empty database for this test, dropped when it ends, and
// returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	exec(t, admin, `CREATE DATABASE `+name)
	t.Cleanup(func() { exec(t, admin, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Proxy forwards TCP to a database and can lose it: Cut closes every connection and
// refuses new ones, Stall accepts and holds them without forwarding (a black hole),
// Restore forwards again.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	mode   int // 0 forward, 1 cut, 2 stall
	conns  map[net.Conn]struct{}
}

// NewProxy starts a proxy to the host:port of dbURL and returns it with dbURL
// rewritten to go through it.
func NewProxy(t testing.TB, dbURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode != 1 {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		switch mode {
		case 1:
			c.Close()
		case 2: // held open until Restore or Cut closes it
		default:
			go p.forward(c)
		}
	}
}

func (p *Proxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 3*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Cut drops every connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.mode = 1
	p.mu.Unlock()
	p.closeAll()
}

// Stall drops existing connections and accepts new ones that never answer.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.mode = 2
	p.mu.Unlock()
	p.closeAll()
}

// Restore forwards new connections again (held ones are closed).
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.mode = 0
	p.mu.Unlock()
	p.closeAll()
}
