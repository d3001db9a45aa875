package containers

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/go-connections/nat"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"github.com/meshdemo/meshdemo/e2e/internal/dockerenv"
)

// versions are deliberately different per hop: each must show its own SERVICE_VERSION,
// which proves the value comes from the environment and is not baked into an image.
var versions = map[string]string{
	"client":       "v1",
	"server1":      "v2",
	"server2":      "v3",
	"user-service": "v1",
}

// upstreamEnv wires the workloads by network alias, as Kubernetes Services would.
var upstreamEnv = map[string]map[string]string{
	"client":  {"SERVER1_URL": "http://server1:8080", "USER_SERVICE_URL": "http://user-service:8080"},
	"server1": {"SERVER2_URL": "http://server2:8080"},
}

// workload is one running container of the shared stack.
type workload struct {
	name     string
	version  string
	ctr      *testcontainers.DockerContainer
	public   string // http://127.0.0.1:<port>
	admin    string
	hostname string // the container's hostname: the instance in the path header
}

// suite is what TestMain sets up once for every test.
type suite struct {
	engine dockerenv.Engine
	root   string
	tag    string
	images map[string]string // workload -> image reference
	net    *testcontainers.DockerNetwork
	w      map[string]*workload
	err    error // set-up failure: every test fails with it
}

var (
	s   = &suite{}
	pid = os.Getpid()
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx := context.Background()
	// What `make test-containers` sets, for a plain `go test` too: ports are published on
	// loopback only, and Ryuk would need a pulled image.
	for k, v := range map[string]string{"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1", "TESTCONTAINERS_RYUK_DISABLED": "true"} {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	// testcontainers narrates every step; this package reports what matters itself.
	if os.Getenv("MESHDEMO_TC_DEBUG") != "1" {
		tclog.SetDefault(quietLogger{})
	}
	s.engine = dockerenv.Probe(ctx)
	if msg, _ := dockerenv.SkipPolicy(s.engine, os.Getenv); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		return m.Run() // every test calls need(t), which skips or fails
	}
	fmt.Fprintf(os.Stderr, "container tests: engine %s (API %s) %s/%s\n", s.engine.ServerVersion, s.engine.APIVersion, s.engine.OS, s.engine.Arch)
	if removed, err := dockerenv.RemoveStale(ctx); err != nil || len(removed) > 0 {
		fmt.Fprintf(os.Stderr, "container tests: removed leftovers of killed runs: %v (errors: %v)\n", removed, err)
	}
	start := time.Now()
	s.err = s.setUp(ctx)
	fmt.Fprintf(os.Stderr, "container tests: set-up took %s (err: %v)\n", time.Since(start).Round(time.Millisecond), s.err)
	defer s.tearDown()
	return m.Run()
}

// need skips or fails t when there is no engine, and fails it when set-up failed.
func need(t *testing.T) *suite {
	t.Helper()
	dockerenv.Require(t, s.engine)
	if s.err != nil {
		t.Fatalf("container stack set-up failed: %v", s.err)
	}
	return s
}

func (s *suite) setUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	root, err := dockerenv.RepoRoot()
	if err != nil {
		return err
	}
	s.root = root
	s.tag = "ct-" + strconv.Itoa(pid)
	binDir, err := os.MkdirTemp("", "meshdemo-ct-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)

	// Builds run one after another: `go build` already uses every core.
	s.images = map[string]string{}
	for _, w := range matrix.WorkloadNames() {
		ref, err := dockerenv.BuildImage(ctx, dockerenv.ImageSpec{
			Root: root, Workload: w, OS: s.engine.OS, Arch: s.engine.Arch,
			Repo: dockerenv.ImageName(w), Tag: s.tag, BinDir: binDir,
			Labels: dockerenv.OwnerLabels(pid),
		})
		if err != nil {
			return err
		}
		s.images[w] = ref
	}

	s.net, err = network.New(ctx, network.WithLabels(dockerenv.OwnerLabels(pid)))
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}

	// The four start together: readiness does not wait for upstreams.
	s.w = map[string]*workload{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(matrix.WorkloadNames()))
	for i, name := range matrix.WorkloadNames() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := startWorkload(ctx, name, s.images[name], s.net, map[string]string{"SERVICE_VERSION": versions[name]})
			mu.Lock()
			defer mu.Unlock()
			if w != nil {
				s.w[name] = w
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startWorkload runs one image the way compose.yaml and Kubernetes do: read-only root,
// every capability dropped, no privilege escalation, the image's own user.
func startWorkload(ctx context.Context, name, ref string, nw *testcontainers.DockerNetwork, env map[string]string) (*workload, error) {
	full := map[string]string{"LOG_LEVEL": "info", "DRAIN_DELAY": "1s", "SHUTDOWN_TIMEOUT": "10s"}
	for k, v := range upstreamEnv[name] {
		full[k] = v
	}
	for k, v := range env {
		full[k] = v
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithName(fmt.Sprintf("%s%d-%s-%d", dockerenv.ComposeProjectPrefix, pid, name, time.Now().UnixNano()%1e6)),
		// Published on loopback only, on ports the engine picks.
		testcontainers.WithExposedPorts("127.0.0.1::8080/tcp", "127.0.0.1::9090/tcp"),
		testcontainers.WithEnv(full),
		testcontainers.WithLabels(dockerenv.OwnerLabels(pid)),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.ReadonlyRootfs = true
			hc.CapDrop = []string{"ALL"}
			hc.SecurityOpt = []string{"no-new-privileges:true"}
		}),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/readyz").WithPort("8080/tcp").
			WithStatusCodeMatcher(func(code int) bool { return code == http.StatusOK }).
			WithStartupTimeout(90 * time.Second)),
	}
	if nw != nil {
		opts = append(opts, network.WithNetwork([]string{name}, nw))
	}
	ctr, err := testcontainers.Run(ctx, ref, opts...)
	if err != nil {
		if ctr != nil {
			logs := containerLogs(ctx, ctr)
			_ = testcontainers.TerminateContainer(ctr)
			return nil, fmt.Errorf("start %s: %w\nlogs:\n%s", name, err, logs)
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	w := &workload{name: name, version: env["SERVICE_VERSION"], ctr: ctr}
	if w.public, err = baseURL(ctx, ctr, "8080/tcp"); err == nil {
		w.admin, err = baseURL(ctx, ctr, "9090/tcp")
	}
	if err == nil {
		var info *container.InspectResponse
		if info, err = ctr.Inspect(ctx); err == nil {
			w.hostname = info.Config.Hostname
		}
	}
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return w, nil
}

func baseURL(ctx context.Context, ctr *testcontainers.DockerContainer, port string) (string, error) {
	host, err := ctr.Host(ctx)
	if err != nil {
		return "", err
	}
	p, err := ctr.MappedPort(ctx, nat.Port(port))
	if err != nil {
		return "", err
	}
	return "http://" + host + ":" + p.Port(), nil
}

// tearDown removes everything set-up created, also after a failed set-up.
func (s *suite) tearDown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range s.w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := testcontainers.TerminateContainer(w.ctr); err != nil {
				fmt.Fprintf(os.Stderr, "container tests: terminate %s: %v\n", w.name, err)
			}
		}()
	}
	wg.Wait()
	if s.net != nil {
		if err := s.net.Remove(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "container tests: remove network: %v\n", err)
		}
	}
	if len(s.images) == 0 {
		return
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "container tests: docker client: %v\n", err)
		return
	}
	defer cli.Close()
	for _, ref := range s.images {
		if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			fmt.Fprintf(os.Stderr, "container tests: remove image %s: %v\n", ref, err)
		}
	}
}

// containerLogs returns a container's stdout and stderr so far.
func containerLogs(ctx context.Context, ctr testcontainers.Container) string {
	r, err := ctr.Logs(ctx)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// logRecords parses a container's JSON log lines; other lines are ignored.
func logRecords(ctx context.Context, ctr testcontainers.Container) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(containerLogs(ctx, ctr), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitForLog polls a container's logs until a record matches or the time is up.
func waitForLog(t *testing.T, ctr testcontainers.Container, within time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, rec := range logRecords(context.Background(), ctr) {
			if match(rec) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
