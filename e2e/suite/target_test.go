//go:build e2e

package suite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"github.com/meshdemo/meshdemo/e2e/kindflow"
)

// target is what the tests know about the deployment under test.
type target struct {
	name string
	base string // the client's base URL (the gateway on kind)
	host string // Host header for base ("" = the URL's)
	// public and admin are each workload's own base URLs (compose only).
	public map[string]string
	admin  map[string]string
	// logs returns the JSON log lines a workload has written so far.
	logs func(ctx context.Context, service string) ([]logLine, error)
	kube *kube // kind only
	root string
}

// tgt is set once by TestMain before any test runs.
var tgt *target

var workloads = matrix.WorkloadNames()

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	name := env("E2E_TARGET", "compose")
	root, err := kindflow.FindRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	ctx := context.Background()
	var stop func()
	switch name {
	case "compose":
		tgt, stop, err = startCompose(ctx, root)
	case "kind":
		tgt, err = kindTarget(root)
		stop = func() {}
	default:
		err = fmt.Errorf("E2E_TARGET=%q: want compose or kind (the workloads as processes are services/integration's)", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: setting up target", name+":", err)
		return 2
	}
	tgt.name, tgt.root = name, root
	fmt.Fprintf(os.Stderr, "e2e: target %s, client at %s (Host %q)\n", name, tgt.base, tgt.host)
	code := m.Run()
	stop()
	if loadtestBin != "" && os.Getenv("E2E_LOADTEST") == "" {
		_ = os.RemoveAll(filepath.Dir(loadtestBin))
	}
	return code
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// freePorts reserves n loopback ports and releases them for the processes to take.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitChain polls until the whole chain answers 200 through the target's front door.
func waitChain(ctx context.Context, t *target, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		r, err := request(ctx, t, http.MethodGet, "/client/server1", nil, nil)
		if err == nil && r.status == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("status %d: %s", r.status, r.body)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("chain not answering 200 within %s; last: %s", within, last)
}

// response is a fully read HTTP answer.
type response struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// request sends one request to path on the client (through the gateway on kind).
func request(ctx context.Context, t *target, method, path string, header http.Header, body []byte) (response, error) {
	return requestURL(ctx, t.base+path, t.host, method, header, body)
}

func requestURL(ctx context.Context, url, host, method string, header http.Header, body []byte) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return response{}, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if host != "" {
		req.Host = host
	}
	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(start)}, nil
}

// logLine is one JSON log record of a workload.
type logLine struct {
	Msg       string `json:"msg"`
	Service   string `json:"service"`
	Version   string `json:"version"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
	TraceID   string `json:"trace_id"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
}

// parseLogs reads JSON records from output whose lines may carry a prefix (compose's
// "server2_1  | ", kubectl's "[pod/...] "); other lines are ignored.
func parseLogs(b []byte) []logLine {
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var l logLine
		if json.Unmarshal([]byte(line[i:]), &l) == nil && l.Msg != "" {
			out = append(out, l)
		}
	}
	return out
}

func kindTarget(root string) (*target, error) {
	// The scenarios deployed are the flavour's (matrix Flavour.Profile); the ingress is
	// 127.0.0.1:8880 with Host client.meshdemo in every flavour.
	cfg, err := kindflow.Config{Root: root, Flavour: matrix.Flavour(os.Getenv("E2E_FLAVOUR"))}.WithDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Cluster = strings.TrimPrefix(env("E2E_KUBE_CONTEXT", cfg.Context()), "kind-")
	cfg.Namespace = env("E2E_NAMESPACE", cfg.Namespace)
	k := &kube{cfg: cfg}
	// A cluster whose Istio is of another flavour is refused before any test runs.
	installed, err := k.runArgv(context.Background(), cfg.InstalledFlavourQuery())
	if err != nil {
		return nil, fmt.Errorf("installed flavour: %w (is the cluster up? `make e2e FLAVOUR=%s` or KEEP_CLUSTER=1)", err, cfg.Flavour)
	}
	if err := kindflow.CheckInstalledFlavour(installed, cfg.Flavour, cfg.Cluster, false); err != nil {
		return nil, fmt.Errorf("E2E_FLAVOUR=%s: %w", cfg.Flavour, err)
	}
	t := &target{base: env("E2E_BASE_URL", cfg.GatewayURL), host: env("E2E_HOST", cfg.Host), kube: k}
	t.logs = k.appLogs
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := waitChain(ctx, t, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("gateway %s: %w (is the cluster up? `make e2e` or KEEP_CLUSTER=1)", t.base, err)
	}
	return t, nil
}
