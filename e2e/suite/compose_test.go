//go:build e2e

package suite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// composeCmd is `docker compose` when the plugin answers, else Debian's docker-compose.
func composeCmd() ([]string, error) {
	if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, fmt.Errorf("neither `docker compose` nor docker-compose is installed (build/docker/ensure-docker.sh installs one)")
}

// startCompose brings compose.yaml up under its own project name on fresh loopback ports,
// with the images `make images` built (--no-build: nothing is pulled or built here), and
// waits until the chain answers.
func startCompose(ctx context.Context, root string) (*target, func(), error) {
	base, err := composeCmd()
	if err != nil {
		return nil, nil, err
	}
	file := env("E2E_COMPOSE_FILE", filepath.Join(root, "compose.yaml"))
	project := env("E2E_COMPOSE_PROJECT", "meshdemo-e2e")
	ports, err := freePorts(3 * len(workloads)) // public and admin pairs, then gRPC
	if err != nil {
		return nil, nil, err
	}
	t := &target{public: map[string]string{}, admin: map[string]string{}}
	environ := os.Environ()
	for i, w := range workloads {
		v := "MESHDEMO_" + strings.ToUpper(strings.ReplaceAll(w, "-", "_"))
		environ = append(environ, v+"_PORT="+strconv.Itoa(ports[2*i]), v+"_ADMIN_PORT="+strconv.Itoa(ports[2*i+1]),
			v+"_GRPC_PORT="+strconv.Itoa(ports[2*len(workloads)+i])) // only client, server1, server2 publish one
		t.public[w] = "http://127.0.0.1:" + strconv.Itoa(ports[2*i])
		t.admin[w] = "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1])
	}
	t.base = t.public["client"]
	compose := func(ctx context.Context, args ...string) ([]byte, error) {
		argv := append(append(append([]string(nil), base...), "-p", project, "-f", file), args...)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = root
		cmd.Env = environ
		out, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
		return out, nil
	}
	down := func() {
		if os.Getenv("E2E_COMPOSE_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "e2e: leaving compose project %s up (E2E_COMPOSE_KEEP=1)\n", project)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := compose(ctx, "down", "--timeout", "20", "--remove-orphans"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: compose down: %v\n%s", err, out)
		}
	}
	// A previous run that was killed may have left the project behind.
	_, _ = compose(ctx, "down", "--timeout", "5", "--remove-orphans")
	start := time.Now()
	if _, err := compose(ctx, "up", "-d", "--no-build"); err != nil {
		down()
		return nil, nil, err
	}
	if err := waitChain(ctx, t, 2*time.Minute); err != nil {
		out, _ := compose(ctx, "ps")
		logs, _ := compose(ctx, "logs", "--no-color", "--tail", "20")
		down()
		return nil, nil, fmt.Errorf("%w\n%s\n%s", err, out, logs)
	}
	fmt.Fprintf(os.Stderr, "e2e: compose project %s up in %s\n", project, time.Since(start).Round(100*time.Millisecond))
	t.logs = func(ctx context.Context, service string) ([]logLine, error) {
		out, err := compose(ctx, "logs", "--no-color", service)
		if err != nil {
			return nil, err
		}
		return parseLogs(out), nil
	}
	return t, down, nil
}

// dockerChain runs the compose target's client and server1 images on a private network, with
// server1's SERVER2_URL pointing at a recorder on the host (host.docker.internal through
// Docker's host-gateway), and returns the client's published URL.
func dockerChain(t *testing.T, recorderPort int, extraEnv ...string) string {
	t.Helper()
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctxBG(), "docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	tag := env("MESHDEMO_IMAGE_TAG", "dev")
	name := "meshdemo-e2e-rec-" + randHex(4)
	docker("network", "create", name)
	t.Cleanup(func() { _, _ = exec.Command("docker", "network", "rm", name).CombinedOutput() })
	run := func(workload string, env ...string) {
		args := []string{"run", "-d", "--name", name + "-" + workload, "--network", name,
			"--add-host", "host.docker.internal:host-gateway", "-e", "DRAIN_DELAY=0s", "-e", "HOSTNAME=" + workload + "-docker"}
		for _, e := range append(env, extraEnv...) {
			args = append(args, "-e", e)
		}
		if workload == "client" {
			args = append(args, "-p", "127.0.0.1::8080")
		}
		docker(append(args, "meshdemo/"+workload+":"+tag)...)
		t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", name+"-"+workload).CombinedOutput() })
	}
	run("server1", "SERVER2_URL=http://host.docker.internal:"+strconv.Itoa(recorderPort))
	run("client", "SERVER1_URL=http://"+name+"-server1:8080")
	hostPort := docker("port", name+"-client", "8080/tcp")
	url := "http://" + strings.Fields(hostPort)[0]
	eventually(t, time.Minute, "the recorder chain's client is ready", func() error {
		r, err := requestURL(ctxBG(), url+"/readyz", "", "GET", nil, nil)
		if err != nil {
			return err
		}
		if r.status != 200 {
			return fmt.Errorf("status %d", r.status)
		}
		return nil
	})
	return url
}
