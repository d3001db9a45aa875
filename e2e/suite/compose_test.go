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
	ports, err := freePorts(2 * len(workloads))
	if err != nil {
		return nil, nil, err
	}
	t := &target{public: map[string]string{}, admin: map[string]string{}}
	environ := os.Environ()
	for i, w := range workloads {
		v := "MESHDEMO_" + strings.ToUpper(strings.ReplaceAll(w, "-", "_"))
		environ = append(environ, v+"_PORT="+strconv.Itoa(ports[2*i]), v+"_ADMIN_PORT="+strconv.Itoa(ports[2*i+1]))
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
