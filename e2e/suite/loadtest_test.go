//go:build e2e

package suite

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/meshdemo/meshdemo/services/headers"
)

// loadReport is the part of bin/loadtest's --json document the suite reads.
type loadReport struct {
	Summary struct {
		Requests int64                       `json:"requests"`
		Status   map[string]int64            `json:"status"`
		Errors   map[string]int64            `json:"errors"`
		Hops     map[string]map[string]int64 `json:"hops"`
	} `json:"summary"`
	Expectations []struct {
		Kind    string `json:"kind"`
		Subject string `json:"subject"`
		OK      bool   `json:"ok"`
		Message string `json:"message"`
	} `json:"expectations"`
	Passed bool `json:"passed"`
}

var (
	loadtestOnce sync.Once
	loadtestBin  string
	loadtestErr  error
)

// loadtestBinary is E2E_LOADTEST (`make e2e` and the make targets build bin/loadtest), or
// the loadtest module built now into a temporary folder.
func loadtestBinary(t *testing.T) string {
	t.Helper()
	loadtestOnce.Do(func() {
		if b := os.Getenv("E2E_LOADTEST"); b != "" {
			loadtestBin, loadtestErr = b, nil
			return
		}
		dir, err := os.MkdirTemp("", "meshdemo-e2e-loadtest-")
		if err != nil {
			loadtestErr = err
			return
		}
		loadtestBin = filepath.Join(dir, "loadtest")
		cmd := exec.Command("go", "build", "-o", loadtestBin, "./cmd/loadtest")
		cmd.Dir = filepath.Join(tgt.root, "loadtest")
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			loadtestErr = fmt.Errorf("building loadtest: %w\n%s", err, out)
		}
	})
	if loadtestErr != nil {
		t.Fatal(loadtestErr)
	}
	if _, err := os.Stat(loadtestBin); err != nil {
		t.Fatalf("loadtest binary: %v", err)
	}
	return loadtestBin
}

// loadtest runs the loadtest CLI against path on the front door with args (for example
// --requests, --expect) and returns its report and whether it exited 0.
func loadtest(t *testing.T, path string, args ...string) (loadReport, bool) {
	t.Helper()
	bin := loadtestBinary(t)
	out := filepath.Join(t.TempDir(), "report.json")
	argv := []string{"--url", tgt.base + path, "--json", out, "--progress", "0"}
	if tgt.host != "" {
		argv = append(argv, "--host", tgt.host)
	}
	argv = append(argv, args...)
	cmd := exec.CommandContext(t.Context(), bin, argv...)
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	t.Logf("+ %s %s", bin, strings.Join(argv, " "))
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("loadtest: %v", err)
	}
	b, rerr := os.ReadFile(out)
	if rerr != nil {
		t.Fatalf("loadtest wrote no report (%v): %v", err, rerr)
	}
	var rep loadReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	return rep, err == nil
}

// TestLoadtestReadsTheFrontDoor runs the loadtest CLI the kind tests rely on against every
// target: its status check accepts the share an app-level fault produces and rejects a wrong
// one, and its split check sees every hop's version in the path header.
func TestLoadtestReadsTheFrontDoor(t *testing.T) {
	// The same on kind: Istio's default retry policy (pilot/pkg/networking/core/route/retry:
	// connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes with no code
	// listed) does not retry an answered 503, so the share reaches the door unchanged.
	flaky := []string{"--requests", "400", "--concurrency", "4", "--header", headers.Fault + ": server2=abort:503@50"}
	code := "503"
	rep, ok := loadtest(t, "/client/server1", append(flaky, "--expect-status", code+":50", "--expect", "server2=v1:100")...)
	if !ok || !rep.Passed || rep.Summary.Requests != 400 {
		t.Fatalf("a 50%% fault share was rejected: exit ok=%v, %v %+v", ok, rep.Summary.Status, rep.Expectations)
	}
	if n := rep.Summary.Hops["server2"]["v1"]; n < 150 {
		t.Errorf("server2 v1 counted %d times, want every answer that reached it", n)
	}
	rep, ok = loadtest(t, "/client/server1", append(flaky, "--expect-status", code+":10")...)
	if ok || rep.Passed {
		t.Fatalf("a 50%% fault share passed as 10%%: %v", rep.Summary.Status)
	}
}
