package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshdemo-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		defer os.RemoveAll(dir)
		args := []string{"build", "-o", dir + string(os.PathSeparator)}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "../client", "../server1", "../server2", "../user-service")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building workloads:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// proc is one workload process.
type proc struct {
	name        string
	cmd         *exec.Cmd
	URL, Admin  string
	GRPC        string // host:port of GRPC_PORT (client, server1, server2)
	mu          sync.Mutex
	lines       []map[string]any
	exited      chan struct{}
	exitErr     error
	startedAt   time.Time
	readyWithin time.Duration
}

// start runs a workload with LISTEN_HOST=127.0.0.1 and ephemeral ports, and returns
// once it logged its addresses.
func start(t *testing.T, name string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name))
	cmd.Env = []string{"LISTEN_HOST=127.0.0.1", "PORT=0", "ADMIN_PORT=0", "GRPC_PORT=0", "DRAIN_DELAY=0s", "HOSTNAME=" + name + "-it", "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), startedAt: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, m)
			if m["msg"] == "serving grpc" {
				p.GRPC = m["grpc"].(string)
			}
			if m["msg"] == "serving" {
				p.URL, p.Admin = "http://"+m["public"].(string), "http://"+m["admin"].(string)
				p.readyWithin = time.Since(p.startedAt)
				once.Do(func() { close(serving) })
			}
			p.mu.Unlock()
		}
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-serving:
	case <-p.exited:
		t.Fatalf("%s exited before serving: %v\n%s", name, p.exitErr, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not start", name)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits for the exit.
func (p *proc) stop(t *testing.T) error {
	select {
	case <-p.exited:
		return p.exitErr
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s ignored SIGTERM", p.name)
	}
	return p.exitErr
}

// logsFor returns the access-log lines carrying a request id.
func (p *proc) logsFor(requestID string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		if l["request_id"] == requestID && l["msg"] == "request" {
			out = append(out, l)
		}
	}
	return out
}

// waitLog polls until a request line for id shows up (logs are written after the
// response, so they can trail it slightly).
func (p *proc) waitLog(t *testing.T, requestID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if l := p.logsFor(requestID); len(l) > 0 {
			return l[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never logged request %s", p.name, requestID)
	return nil
}

// chain is the four workloads wired together.
type chain struct{ client, server1, server2, users *proc }

func startChain(t *testing.T, extra map[string]map[string]string) *chain {
	t.Helper()
	with := func(name string, env map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range extra[name] {
			m[k] = v
		}
		for k, v := range env {
			m[k] = v
		}
		return m
	}
	c := &chain{}
	c.server2 = start(t, "server2", with("server2", nil))
	c.server1 = start(t, "server1", with("server1", map[string]string{"SERVER2_URL": c.server2.URL, "SERVER2_GRPC_ADDR": c.server2.GRPC}))
	c.users = start(t, "user-service", with("user-service", nil))
	c.client = start(t, "client", with("client", map[string]string{"SERVER1_URL": c.server1.URL, "USER_SERVICE_URL": c.users.URL, "SERVER1_GRPC_ADDR": c.server1.GRPC}))
	return c
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func call(t *testing.T, method, url string, hdr map[string]string, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}
