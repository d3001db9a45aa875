package containers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"gopkg.in/yaml.v3"

	"github.com/meshdemo/meshdemo/e2e/internal/dockerenv"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// composeCmd finds a compose implementation: the `docker compose` plugin, or Debian's
// docker-compose. Without one the test skips, except under CI where
// build/docker/ensure-docker.sh installs one and its absence is a failure.
func composeCmd(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	msg := "!!! neither `docker compose` nor `docker-compose` is installed: compose checks cannot run"
	if os.Getenv(dockerenv.EnvCI) == "true" && os.Getenv(dockerenv.EnvAllowNoDocker) != "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// compose runs one compose command from the repository root with extra environment.
func compose(ctx context.Context, t *testing.T, env []string, args ...string) ([]byte, error) {
	t.Helper()
	root, err := dockerenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmdline := append(composeCmd(t), append([]string{"-f", "compose.yaml"}, args...)...)
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s", strings.Join(cmdline, " "), err, out)
	}
	return out, nil
}

// composeFile is the part of `compose config` output the checks read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		ReadOnly    bool              `yaml:"read_only"`
		User        string            `yaml:"user"`
		CapDrop     []string          `yaml:"cap_drop"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Ports    []any    `yaml:"ports"`
		Profiles []string `yaml:"profiles"`
	} `yaml:"services"`
}

// TestComposeFile validates compose.yaml with the compose tool (both without and with
// the observability profile) and checks the rules the file promises on its resolved form.
func TestComposeFile(t *testing.T) {
	out, err := compose(t.Context(), t, nil, "config")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := compose(t.Context(), t, nil, "--profile", "observability", "config", "-q"); err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(out, &f); err != nil {
		t.Fatalf("compose config output: %v\n%s", err, out)
	}
	for _, name := range []string{"otel-collector", "jaeger", "prometheus"} {
		if svc, ok := f.Services[name]; ok && !slices.Contains(svc.Profiles, "observability") {
			t.Errorf("%s must only start with the observability profile, has profiles %v", name, svc.Profiles)
		}
	}
	wantDeps := map[string][]string{"client": {"server1", "user-service"}, "server1": {"server2"}}
	for _, name := range dockerenv.Workloads {
		svc, ok := f.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if !svc.ReadOnly || svc.User != "65532:65532" || !slices.Equal(svc.CapDrop, []string{"ALL"}) {
			t.Errorf("%s: read_only=%v user=%q cap_drop=%v, want true, 65532:65532, [ALL]", name, svc.ReadOnly, svc.User, svc.CapDrop)
		}
		if !slices.Equal(svc.Healthcheck.Test, []string{"CMD", "/workload", "healthcheck"}) {
			t.Errorf("%s: healthcheck %v", name, svc.Healthcheck.Test)
		}
		if !pathheader.IsToken(svc.Environment["SERVICE_VERSION"]) {
			t.Errorf("%s: SERVICE_VERSION %q is not set to a token", name, svc.Environment["SERVICE_VERSION"])
		}
		if svc.Image != "meshdemo/"+name+":dev" {
			t.Errorf("%s: image %q, want meshdemo/%s:dev", name, svc.Image, name)
		}
		for _, dep := range wantDeps[name] {
			if svc.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("%s: depends_on %s condition %q, want service_healthy", name, dep, svc.DependsOn[dep].Condition)
			}
		}
		for _, p := range svc.Ports {
			// v1 prints "127.0.0.1:8080:8080/tcp", the plugin a map with host_ip.
			var hostIP string
			switch p := p.(type) {
			case string:
				hostIP, _, _ = strings.Cut(p, ":")
			case map[string]any:
				hostIP, _ = p["host_ip"].(string)
			}
			if hostIP != "127.0.0.1" {
				t.Errorf("%s: port %v is not published on 127.0.0.1 only", name, p)
			}
		}
	}
	for _, u := range []struct{ svc, key, want string }{
		{"client", "SERVER1_URL", "http://server1:8080"},
		{"client", "USER_SERVICE_URL", "http://user-service:8080"},
		{"server1", "SERVER2_URL", "http://server2:8080"},
	} {
		if got := f.Services[u.svc].Environment[u.key]; got != u.want {
			t.Errorf("%s: %s=%q, want %q", u.svc, u.key, got, u.want)
		}
	}
}

// freePort asks the kernel for a free loopback port (it may be taken again before use,
// which only makes the test fail loudly, never pass wrongly).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestComposeUp starts compose.yaml for real with the images this run built, on free
// host ports, and follows one request through the chain.
func TestComposeUp(t *testing.T) {
	s := need(t)
	composeCmd(t)
	project := dockerenv.ComposeProjectPrefix + strconv.Itoa(pid)
	env := []string{
		"COMPOSE_PROJECT_NAME=" + project,
		"MESHDEMO_IMAGE_TAG=" + s.tag,
		"MESHDEMO_SERVICE_VERSION=ct7",
	}
	for _, v := range []string{"CLIENT", "SERVER1", "SERVER2", "USER_SERVICE"} {
		env = append(env, "MESHDEMO_"+v+"_PORT="+freePort(t), "MESHDEMO_"+v+"_ADMIN_PORT="+freePort(t))
	}
	clientPort := strings.TrimPrefix(env[3], "MESHDEMO_CLIENT_PORT=")
	for _, v := range []string{"CLIENT", "SERVER1", "SERVER2"} { // the gRPC ports too, off their defaults
		env = append(env, "MESHDEMO_"+v+"_GRPC_PORT="+freePort(t))
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := compose(ctx, t, env, "logs", "--no-color")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := compose(ctx, t, env, "down", "--remove-orphans", "-t", "20"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := compose(ctx, t, env, "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}

	var r response
	url := "http://127.0.0.1:" + clientPort + "/client/server1"
	for {
		resp, err := hc.Get(url)
		if err == nil {
			r = response{status: resp.StatusCode, header: resp.Header, body: []byte(readAll(resp.Body))}
			resp.Body.Close()
			if r.status == http.StatusOK {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("client never answered 200 on %s (last: %v %d %s)", url, err, r.status, r.body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("compose up → first 200 through the chain after %s", time.Since(start).Round(time.Millisecond))
	hops, err := pathheader.Parse(r.header.Get(pathheader.Name))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hops {
		names = append(names, h.Service)
		if h.Version != "ct7" {
			t.Errorf("hop %s: version %q, want ct7 from MESHDEMO_SERVICE_VERSION", h, h.Version)
		}
	}
	if !slices.Equal(names, []string{"client", "server1", "server2"}) {
		t.Errorf("path %v, want client, server1, server2", names)
	}

	// What the engine made of the file: the same hardening as the Kubernetes pods.
	cli := dockerClient(t)
	ctrs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrs) != len(dockerenv.Workloads) {
		t.Errorf("compose started %d containers, want %d", len(ctrs), len(dockerenv.Workloads))
	}
	for _, c := range ctrs {
		info := waitHealthy(t, cli, c.ID, time.Minute)
		if !info.HostConfig.ReadonlyRootfs || info.Config.User != "65532:65532" || !slices.Equal([]string(info.HostConfig.CapDrop), []string{"ALL"}) {
			t.Errorf("%s: read-only=%v user=%q cap_drop=%v", info.Name, info.HostConfig.ReadonlyRootfs, info.Config.User, info.HostConfig.CapDrop)
		}
		for port, bindings := range info.HostConfig.PortBindings {
			for _, b := range bindings {
				if b.HostIP != "127.0.0.1" {
					t.Errorf("%s: %s published on %q, want 127.0.0.1", info.Name, port, b.HostIP)
				}
			}
		}
	}
}
