package containers

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/testcontainers/testcontainers-go"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"github.com/meshdemo/meshdemo/e2e/internal/dockerenv"
)

func dockerClient(t *testing.T) *testcontainers.DockerClient {
	t.Helper()
	cli, err := testcontainers.NewDockerClientWithOpts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestImages checks what every image promises before anything runs: size, user,
// entrypoint, health check, labels, and no SERVICE_VERSION baked in.
func TestImages(t *testing.T) {
	s := need(t)
	cli := dockerClient(t)
	for _, w := range matrix.WorkloadNames() {
		t.Run(w, func(t *testing.T) {
			info, err := cli.ImageInspect(t.Context(), s.images[w])
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes (%.2f MiB)", s.images[w], info.Size, float64(info.Size)/(1<<20))
			if info.Size > dockerenv.MaxImageBytes {
				t.Errorf("image is %d bytes, more than the %d byte (15 MiB) limit", info.Size, dockerenv.MaxImageBytes)
			}
			if info.Os != s.engine.OS || info.Architecture != s.engine.Arch {
				t.Errorf("image platform %s/%s, engine %s/%s", info.Os, info.Architecture, s.engine.OS, s.engine.Arch)
			}
			cfg := info.Config
			if cfg == nil {
				t.Fatal("image has no config")
			}
			if cfg.User != "65532:65532" {
				t.Errorf("USER %q, want 65532:65532", cfg.User)
			}
			if !slices.Equal(cfg.Entrypoint, []string{"/workload"}) {
				t.Errorf("ENTRYPOINT %q, want [/workload]", cfg.Entrypoint)
			}
			if cfg.Healthcheck == nil || !slices.Equal(cfg.Healthcheck.Test, []string{"CMD", "/workload", "healthcheck"}) {
				t.Errorf("HEALTHCHECK %+v, want CMD /workload healthcheck", cfg.Healthcheck)
			}
			for _, e := range cfg.Env {
				if strings.HasPrefix(e, "SERVICE_VERSION=") {
					t.Errorf("image bakes in %s; the version must come from the environment", e)
				}
			}
			for _, p := range []string{"8080/tcp", "9090/tcp"} {
				if _, ok := cfg.ExposedPorts[p]; !ok {
					t.Errorf("port %s not exposed (have %v)", p, cfg.ExposedPorts)
				}
			}
			if cfg.StopSignal != "SIGTERM" {
				t.Errorf("STOPSIGNAL %q, want SIGTERM", cfg.StopSignal)
			}
			wantLabels := map[string]string{
				"org.opencontainers.image.title":  "meshdemo-" + w,
				"org.opencontainers.image.source": "https://github.com/meshdemo/meshdemo",
			}
			for k, v := range wantLabels {
				if got := cfg.Labels[k]; got != v {
					t.Errorf("label %s=%q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"org.opencontainers.image.description", "org.opencontainers.image.licenses", "org.opencontainers.image.revision", "org.opencontainers.image.version"} {
				if cfg.Labels[k] == "" {
					t.Errorf("label %s missing", k)
				}
			}
		})
	}
}

// TestProcessInContainer looks at the running containers from the outside: one process,
// uid and gid 65532, no shell to exec, the binary's own health check passing, and the
// engine reporting the container healthy with a read-only root file system.
func TestProcessInContainer(t *testing.T) {
	s := need(t)
	cli := dockerClient(t)
	for _, name := range matrix.WorkloadNames() {
		w := s.w[name]
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			top, err := cli.ContainerTop(ctx, w.ctr.GetContainerID(), []string{"-o", "pid,uid,gid,args"})
			if err != nil {
				t.Fatal(err)
			}
			uid, gid, args := slices.Index(top.Titles, "UID"), slices.Index(top.Titles, "GID"), slices.Index(top.Titles, "COMMAND")
			if uid < 0 || gid < 0 || args < 0 {
				t.Fatalf("unexpected ps titles %q", top.Titles)
			}
			// The workload is the only process; the engine's own health probe
			// (/workload healthcheck) may be caught running next to it.
			mainProcs := 0
			for _, p := range top.Processes {
				if p[uid] != "65532" || p[gid] != "65532" {
					t.Errorf("process %q runs as uid %s gid %s, want 65532", p[args], p[uid], p[gid])
				}
				switch p[args] {
				case "/workload":
					mainProcs++
				case "/workload healthcheck":
				default:
					t.Errorf("unexpected process %q in the container", p[args])
				}
			}
			if mainProcs != 1 {
				t.Errorf("want one /workload process, got %q", top.Processes)
			}

			if code, out := execIn(t, cli, w.ctr.GetContainerID(), "/bin/sh", "-c", "true"); code == 0 {
				t.Errorf("/bin/sh ran inside the image (exit 0, output %q); it must have no shell", out)
			}
			if code, out := execIn(t, cli, w.ctr.GetContainerID(), "/workload", "healthcheck"); code != 0 || !strings.Contains(out, " 200 ") {
				t.Errorf("/workload healthcheck: exit %d, output %q; want 0 and a 200 from /readyz", code, out)
			}

			info := waitHealthy(t, cli, w.ctr.GetContainerID(), time.Minute)
			if !info.HostConfig.ReadonlyRootfs {
				t.Error("container was expected to run with a read-only root file system")
			}
		})
	}
}

// execIn runs a command in a container and returns its exit code and output. It reads
// the attached stream to its end before asking for the exit code: asking earlier can see
// a process that has not started yet, which reports exit code 0.
func execIn(t *testing.T, cli *testcontainers.DockerClient, id string, cmd ...string) (int, string) {
	t.Helper()
	ctx := t.Context()
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	att, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %q: attach: %v", cmd, err)
	}
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		t.Fatalf("exec %q: reading output: %v", cmd, err)
	}
	for {
		info, err := cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			t.Fatalf("exec %q: inspect: %v", cmd, err)
		}
		if !info.Running {
			return info.ExitCode, out.String()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy polls the engine's health status (fed by the image's HEALTHCHECK).
func waitHealthy(t *testing.T, cli *testcontainers.DockerClient, id string, within time.Duration) container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for {
		info, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatalf("waiting for healthy: %v", err)
		}
		if info.State != nil && info.State.Health != nil && info.State.Health.Status == container.Healthy {
			return info
		}
		select {
		case <-ctx.Done():
			var last string
			if info.State != nil && info.State.Health != nil {
				last = info.State.Health.Status
				if n := len(info.State.Health.Log); n > 0 {
					last += ": " + info.State.Health.Log[n-1].Output
				}
			}
			t.Fatalf("container not healthy within %s (last: %s)", within, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
