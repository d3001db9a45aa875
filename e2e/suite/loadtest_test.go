//go:build e2e

package suite

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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

// loadtest runs bin/loadtest against path on the gateway with args (for example
// --requests, --expect) and returns its report and whether it exited 0. The binary comes from
// E2E_LOADTEST (`make e2e` builds it) and must exist on kind.
func loadtest(t *testing.T, path string, args ...string) (loadReport, bool) {
	t.Helper()
	bin := env("E2E_LOADTEST", filepath.Join(tgt.root, "bin", "loadtest"))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("loadtest binary: %v (build it: go build -C loadtest -o ../bin/loadtest ./cmd/loadtest)", err)
	}
	out := filepath.Join(t.TempDir(), "report.json")
	argv := append([]string{"--url", tgt.base + path, "--host", tgt.host, "--json", out}, args...)
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
