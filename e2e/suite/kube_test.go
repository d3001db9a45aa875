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

	"github.com/meshdemo/meshdemo/e2e/kindflow"
)

// kube runs kubectl against the kind cluster of the run.
type kube struct {
	cfg kindflow.Config
}

// run runs kubectl in the run's context and namespace.
func (k *kube) run(ctx context.Context, args ...string) ([]byte, error) {
	return k.runArgv(ctx, append([]string{"kubectl", "--context", k.cfg.Context(), "-n", k.cfg.Namespace}, args...))
}

// runArgv runs a whole kubectl argv. Every kubectl command of the suite passes here, and
// kindflow.GuardKubectl refuses to run anything in a sidecar container: a call from
// istio-proxy (UID 1337) is not captured, so it has no identity and STRICT mTLS resets it.
func (k *kube) runArgv(ctx context.Context, argv []string) ([]byte, error) {
	if err := kindflow.GuardKubectl(argv); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr)
	}
	return out, nil
}

// meshCall makes an in-mesh call from the application container of call.From (kindflow.Exec:
// `kubectl exec ... -c <app> -- /workload get URL`), so it carries that workload's identity,
// and returns the status code, or kindflow.Refused when the network gave no answer
// (kindflow.CallResult).
func (k *kube) meshCall(t *testing.T, call kindflow.MeshCall) int {
	t.Helper()
	out, err := k.runArgv(t.Context(), k.cfg.Exec(call))
	code, err := kindflow.CallResult(call, out, err)
	if err != nil {
		t.Fatalf("call from %s to %s: %v", call.From, call.URL, err)
	}
	return code
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

// pods lists the pods matching a label selector that are running, ready and not being
// deleted (kindflow.LivePods): after a rollout, the old pods may still be terminating.
func (k *kube) pods(t *testing.T, selector string) []string {
	t.Helper()
	names, err := kindflow.LivePods([]byte(k.must(t, "get", "pods", "-l", selector, "-o", "json")))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// podIP is a pod's IP address.
func (k *kube) podIP(t *testing.T, pod string) string {
	t.Helper()
	return strings.TrimSpace(k.must(t, "get", "pod", pod, "-o", "jsonpath={.status.podIP}"))
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

// runSteps executes kindflow steps from the repository root.
func (k *kube) runSteps(t *testing.T, steps []kindflow.Step) {
	t.Helper()
	r := kindflow.Runner{Root: k.cfg.Root, Out: testWriter{t}, Stdout: testWriter{t}, Stderr: testWriter{t}}
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
