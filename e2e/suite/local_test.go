//go:build e2e

package suite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var commandContext = exec.CommandContext

// proc is one workload process started by the suite, with its output kept for the tests.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b...)
}

// startProc runs bin/name on loopback with the given ports and extra environment.
func startProc(bin, name string, port, admin int, extra ...string) (*proc, error) {
	cmd := exec.Command(bin + "/" + name)
	cmd.Env = append(os.Environ(),
		"LISTEN_HOST=127.0.0.1", "PORT="+strconv.Itoa(port), "ADMIN_PORT="+strconv.Itoa(admin),
		"HOSTNAME="+name+"-local", "DRAIN_DELAY=0s", "SHUTDOWN_TIMEOUT=5s", "LOG_LEVEL=info",
		"OTEL_EXPORTER_OTLP_ENDPOINT=",
	)
	cmd.Env = append(cmd.Env, extra...)
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM (the workloads drain and shut down) and kills after a grace period.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitReady polls a /readyz until 200 or the process exits.
func waitReady(ctx context.Context, p *proc, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, p.out.Bytes())
		default:
		}
		if r, err := requestURL(ctx, url+"/readyz", "", "GET", nil, nil); err == nil && r.status == 200 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s within 30s: %s", p.name, url, p.out.Bytes())
}

// chain is workload processes wired to each other on fresh loopback ports, with their public
// and admin URLs by workload name.
type chain struct {
	procs  []*proc
	public map[string]string
	admin  map[string]string
}

// startChain starts names from bin, upstreams first, each ready before the next starts; env
// comes after the wiring, so it overrides an upstream URL (SERVER2_URL=... to put a recorder
// in server2's place).
func startChain(ctx context.Context, bin string, names []string, env ...string) (*chain, error) {
	ports, err := freePorts(3 * len(workloads)) // public and admin pairs, then gRPC
	if err != nil {
		return nil, err
	}
	c := &chain{public: map[string]string{}, admin: map[string]string{}}
	grpcPort := func(idx int) string { return strconv.Itoa(ports[2*len(workloads)+idx]) }
	port := map[string]int{}
	for i, w := range workloads {
		port[w] = ports[2*i]
		c.public[w] = "http://127.0.0.1:" + strconv.Itoa(ports[2*i])
		c.admin[w] = "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1])
	}
	wiring := []string{
		"SERVER1_URL=" + c.public["server1"], "SERVER2_URL=" + c.public["server2"],
		"USER_SERVICE_URL=" + c.public["user-service"],
		"SERVER1_GRPC_ADDR=127.0.0.1:" + grpcPort(indexOf(workloads, "server1")),
		"SERVER2_GRPC_ADDR=127.0.0.1:" + grpcPort(indexOf(workloads, "server2")),
	}
	// Upstreams first, so the client's first call finds them.
	for i := len(names) - 1; i >= 0; i-- {
		name := names[i]
		idx := indexOf(workloads, name)
		p, err := startProc(bin, name, ports[2*idx], ports[2*idx+1], append(append(wiring, "GRPC_PORT="+grpcPort(idx)), env...)...)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		if err := waitReady(ctx, p, c.public[name]); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *chain) stop() {
	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Go(p.stop)
	}
	wg.Wait()
}

func (c *chain) proc(name string) *proc {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func startLocal(ctx context.Context, root string) (*target, func(), error) {
	tmp, err := os.MkdirTemp("", "meshdemo-e2e-bin-")
	if err != nil {
		return nil, nil, err
	}
	bin, err := binDir(ctx, root, tmp)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, nil, err
	}
	c, err := startChain(ctx, bin, workloads)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, nil, err
	}
	t := &target{base: c.public["client"], public: c.public, admin: c.admin}
	t.logs = func(_ context.Context, service string) ([]logLine, error) {
		p := c.proc(service)
		if p == nil {
			return nil, errors.New("no process " + service)
		}
		return parseLogs(p.out.Bytes()), nil
	}
	localBin = bin
	return t, func() { c.stop(); _ = os.RemoveAll(tmp) }, nil
}

// localBin is the folder of workload binaries on the local target (tests start extra chains).
var localBin string
