//go:build e2e

package suite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/e2e/kindpath"
)

// kube runs kubectl against the kind cluster of the run.
type kube struct {
	cfg kindpath.Config
}

func (k *kube) run(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{"--context", k.cfg.Context(), "-n", k.cfg.Namespace}, args...)
	cmd := exec.CommandContext(ctx, "kubectl", argv...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr)
	}
	return out, nil
}

func (k *kube) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.run(t.Context(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// appLogs reads the application container's logs of every pod of a workload.
func (k *kube) appLogs(ctx context.Context, service string) ([]logLine, error) {
	out, err := k.run(ctx, "logs", "-l", "app="+service, "-c", service, "--tail=-1", "--prefix", "--max-log-requests=20")
	if err != nil {
		return nil, err
	}
	return parseLogs(out), nil
}

// pods lists the names of the running pods matching a label selector.
func (k *kube) pods(t *testing.T, selector string) []string {
	t.Helper()
	out := k.must(t, "get", "pods", "-l", selector, "--field-selector=status.phase=Running",
		"-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}")
	return strings.Fields(out)
}

// portForward forwards a free local port to port of a pod and returns its base URL.
func (k *kube) portForward(t *testing.T, pod string, port int) string {
	t.Helper()
	local, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("kubectl", "--context", k.cfg.Context(), "-n", k.cfg.Namespace, "port-forward",
		"pod/"+pod, fmt.Sprintf("%d:%d", local[0], port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Forwarding from") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("port-forward to %s:%d not ready in 30s", pod, port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", local[0])
}

// runSteps executes kindpath steps from the repository root.
func (k *kube) runSteps(t *testing.T, steps []kindpath.Step) {
	t.Helper()
	r := kindpath.Runner{Root: k.cfg.Root, Out: testWriter{t}, Stdout: testWriter{t}, Stderr: testWriter{t}}
	if err := r.Run(context.WithoutCancel(t.Context()), steps); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
