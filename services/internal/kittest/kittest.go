// Package kittest builds real workload kits for handler tests, so tests go through the
// same middleware, probes and fault injector as production.
package kittest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/config"
	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/health"
	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// Common returns a valid config for service name with short timeouts.
func Common(name string) config.Common {
	return config.Common{
		ServiceName: name, ServiceVersion: "v1", Instance: name + "-test",
		UpstreamTimeout: 2 * time.Second, LogLevel: slog.LevelWarn,
		ShutdownTimeout: time.Second, IdleTimeout: time.Minute,
	}
}

// Kit builds a ready Kit; logs go to logs (nil discards them).
func Kit(t testing.TB, c config.Common, f faults.Config, logs io.Writer) *workload.Kit {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	k, err := workload.NewKit(c, f, logs)
	if err != nil {
		t.Fatalf("NewKit: %v", err)
	}
	k.Health.Set(health.Ready)
	return k
}

// Default is Kit with Common(name) and the default fault config.
func Default(t testing.TB, name string) *workload.Kit {
	return Kit(t, Common(name), faults.DefaultConfig(), nil)
}

// GRPC serves k's gRPC server (the kit's interceptor, health, reflection) with the
// services register adds, on a loopback port, Ready; it returns the address and stops
// the server when the test ends.
func GRPC(t testing.TB, k *workload.Kit, register func(*grpc.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcworkload.Server(k, ln, register)
	srv.SetPhase(health.Ready)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("grpc shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("grpc serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// HistCount is the sample count of k's histogram series name with (at least) labels.
func HistCount(t testing.TB, k *workload.Kit, name string, labels map[string]string) uint64 {
	t.Helper()
	mfs, err := k.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			return m.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// Logs is a log sink the server's goroutines and the test share.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes is a copy of what was written.
func (l *Logs) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func (l *Logs) String() string { return string(l.Bytes()) }

// HalfClose sends a raw HTTP/1.1 request to addr, shuts down its sending side
// (shutdown(SHUT_WR), as some clients and proxies do) and returns every byte the server
// sent until it closed the connection (at most 4 s).
func HalfClose(t testing.TB, addr, request string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(4 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, got)
	}
	return got
}
