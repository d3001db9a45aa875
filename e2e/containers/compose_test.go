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

	"github.com/meshdemo/meshdemo/deploy/matrix"
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

// compose runs one compose command on compose.yaml from the repository root with extra environment.
func compose(ctx context.Context, t *testing.T, env []string, args ...string) ([]byte, error) {
	t.Helper()
	return composeWith(ctx, t, "compose.yaml", env, args...)
}

// composeWith runs one compose command on file (relative to the repository root) from the root.
func composeWith(ctx context.Context, t *testing.T, file string, env []string, args ...string) ([]byte, error) {
	t.Helper()
	root, err := dockerenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmdline := append(composeCmd(t), append([]string{"-f", file}, args...)...)
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
		Volumes  []any    `yaml:"volumes"`
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
	for _, name := range matrix.WorkloadNames() {
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

// postgresFile is the override that puts user-service v1 and v2 on one PostgreSQL.
const postgresFile = "compose.postgres.yaml"

// TestComposePostgresFile validates compose.yaml with compose.postgres.yaml and checks what the
// override promises on the resolved form: a pinned, hardened, health-checked postgres with its
// own volume; v1 and v2 of user-service on the same DATABASE_URL, started only once the
// database is healthy; v2 identical to v1 but for its version and host ports (the file repeats
// compose.yaml's settings, which must not drift). And compose.yaml alone has no database at all,
// so the plain `compose up` never pulls an image.
func TestComposePostgresFile(t *testing.T) {
	read := func(args ...string) composeFile {
		t.Helper()
		out, err := compose(t.Context(), t, nil, append(args, "config")...)
		if err != nil {
			t.Fatal(err)
		}
		var f composeFile
		if err := yaml.Unmarshal(out, &f); err != nil {
			t.Fatalf("compose config output: %v\n%s", err, out)
		}
		return f
	}
	plain := read()
	if _, ok := plain.Services["postgres"]; ok {
		t.Error("compose.yaml alone starts postgres: the plain `compose up` would pull an image")
	}
	if u := plain.Services["user-service"].Environment["DATABASE_URL"]; u != "" {
		t.Errorf("compose.yaml alone: user-service DATABASE_URL %q, want none (memory store)", u)
	}

	f := read("-f", postgresFile)
	pg, ok := f.Services["postgres"]
	if !ok {
		t.Fatalf("%s: no postgres service", postgresFile)
	}
	if repo, tag, _ := strings.Cut(pg.Image, ":"); repo != "postgres" || tag == "" || tag == "latest" {
		t.Errorf("postgres image %q, want the official image pinned by tag", pg.Image)
	}
	if !pg.ReadOnly || pg.User == "" || strings.HasPrefix(pg.User, "0") || !slices.Equal(pg.CapDrop, []string{"ALL"}) {
		t.Errorf("postgres: read_only=%v user=%q cap_drop=%v, want true, non-root, [ALL]", pg.ReadOnly, pg.User, pg.CapDrop)
	}
	if !slices.Contains(pg.Healthcheck.Test, "pg_isready") {
		t.Errorf("postgres: healthcheck %v, want pg_isready", pg.Healthcheck.Test)
	}
	dataVolume := false
	for _, v := range pg.Volumes {
		// v1 prints "postgres-data:/var/lib/postgresql/data:rw", the plugin a map.
		switch v := v.(type) {
		case string:
			src, rest, _ := strings.Cut(v, ":")
			dst, _, _ := strings.Cut(rest, ":")
			dataVolume = dataVolume || (src == "postgres-data" && dst == "/var/lib/postgresql/data")
		case map[string]any:
			dataVolume = dataVolume || (v["source"] == "postgres-data" && v["target"] == "/var/lib/postgresql/data")
		}
	}
	if !dataVolume {
		t.Errorf("postgres: volumes %v, want the named volume postgres-data on /var/lib/postgresql/data", pg.Volumes)
	}
	if pw := pg.Environment["POSTGRES_PASSWORD"]; pw == "" || pg.Environment["POSTGRES_USER"] == "" || pg.Environment["POSTGRES_DB"] == "" {
		t.Errorf("postgres: environment %v lacks user, password or database", pg.Environment)
	}
	wantURL := fmt.Sprintf("postgres://%s:%s@postgres:5432/%s?sslmode=disable",
		pg.Environment["POSTGRES_USER"], pg.Environment["POSTGRES_PASSWORD"], pg.Environment["POSTGRES_DB"])

	v1, v2 := f.Services["user-service"], f.Services["user-service-v2"]
	for name, svc := range map[string]struct{ version string }{"user-service": {"v1"}, "user-service-v2": {"v2"}} {
		s := f.Services[name]
		if got := s.Environment["DATABASE_URL"]; got != wantURL {
			t.Errorf("%s: DATABASE_URL %q, want %q", name, got, wantURL)
		}
		if s.DependsOn["postgres"].Condition != "service_healthy" {
			t.Errorf("%s: depends_on postgres %q, want service_healthy", name, s.DependsOn["postgres"].Condition)
		}
		if got := s.Environment["SERVICE_VERSION"]; got != svc.version {
			t.Errorf("%s: SERVICE_VERSION %q, want %s", name, got, svc.version)
		}
	}
	if v2.Image != v1.Image || v2.ReadOnly != v1.ReadOnly || v2.User != v1.User || !slices.Equal(v2.CapDrop, v1.CapDrop) ||
		!slices.Equal(v2.Healthcheck.Test, v1.Healthcheck.Test) {
		t.Errorf("user-service-v2 differs from user-service: image %q/%q read_only %v/%v user %q/%q cap_drop %v/%v healthcheck %v/%v",
			v2.Image, v1.Image, v2.ReadOnly, v1.ReadOnly, v2.User, v1.User, v2.CapDrop, v1.CapDrop, v2.Healthcheck.Test, v1.Healthcheck.Test)
	}
	for k, want := range v1.Environment {
		if k != "SERVICE_VERSION" && v2.Environment[k] != want {
			t.Errorf("user-service-v2: %s=%q, user-service has %q", k, v2.Environment[k], want)
		}
	}
	for k := range v2.Environment {
		if _, ok := v1.Environment[k]; !ok {
			t.Errorf("user-service-v2: %s is set, user-service has no such variable", k)
		}
	}
	for name, svc := range map[string][]any{"postgres": pg.Ports, "user-service-v2": v2.Ports} {
		for _, p := range svc {
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
	if len(ctrs) != len(matrix.WorkloadNames()) {
		t.Errorf("compose started %d containers, want %d", len(ctrs), len(matrix.WorkloadNames()))
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
