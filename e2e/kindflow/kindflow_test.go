package kindflow

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

func config(t *testing.T) Config {
	t.Helper()
	c, err := Config{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func flavourConfig(t *testing.T, flavour matrix.Flavour) Config {
	t.Helper()
	c, err := Config{Flavour: flavour}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDryRun prints the whole plan of every flavour and checks what it does: the phases in
// order, teardown last; the files it names exist; the flavour's install and waits; the
// baseline deployed once before the tests, then every declared scenario once, each followed by
// the return to the baseline; every meshed call in an application container of a Deployment
// the scenario of the moment runs.
func TestDryRun(t *testing.T) {
	for _, flavour := range matrix.Flavours() {
		t.Run(flavour.String(), func(t *testing.T) {
			c := flavourConfig(t, flavour)
			plan, err := Plan(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := (Runner{Root: c.Root, DryRun: true, Out: &out}).Run(context.Background(), plan); err != nil {
				t.Fatal(err)
			}
			t.Logf("kind flow, flavour %s, %d commands:\n%s", flavour, len(plan), out.String())
			if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != len(plan) {
				t.Fatalf("printed %d lines for %d steps", len(lines), len(plan))
			}

			// The phases come in this order, each at least once; teardown is last and always runs.
			last := -1
			for _, phase := range []string{"kind", "istioctl", "skaffold", "cluster", "istio", "images", "deploy " + Baseline, "test", "teardown"} {
				i := slices.IndexFunc(plan, func(s Step) bool { return s.Name == phase })
				if i < last {
					t.Errorf("no %q step, or it comes before an earlier phase", phase)
				}
				last = i
			}
			if end := plan[len(plan)-1]; !end.Always || end.Name != "teardown" {
				t.Errorf("the last step must be an Always teardown, got %s", end)
			}

			// The files and folders the commands name exist.
			for _, s := range plan {
				for i, a := range s.Args {
					if i > 0 && slices.Contains([]string{"-f", "--config", "-k"}, s.Args[i-1]) && !filepath.IsAbs(a) {
						if _, err := os.Stat(filepath.Join(c.Root, s.Dir, a)); err != nil {
							t.Errorf("step %q: %v", s.Name, err)
						}
					}
				}
			}

			// Which scenarios are deployed, in order, and what each meshed call runs in.
			var deployed []string
			var current []Object
			for _, s := range plan {
				k, ok := parseKubectl(s.Args)
				switch {
				case ok && k.Verb == "apply" && !slices.Contains(k.Args, "--server-side"):
					dir := flagValue(k.Args, "-k")
					deployed = append(deployed, dir)
					if current, err = Render(context.Background(), c.Root, dir); err != nil {
						t.Fatal(err)
					}
				case ok && k.Verb == "exec":
					if err := CheckExec(current, s.Args); err != nil {
						t.Errorf("step %q: %v", s.Name, err)
					}
				}
			}
			want := []string{matrix.ScenarioDir(flavour.Profile(Baseline))}
			for _, name := range matrix.ScenarioNames() {
				want = append(want, matrix.ScenarioDir(flavour.Profile(name)), matrix.ScenarioDir(flavour.Profile(Baseline)))
			}
			if !slices.Equal(deployed, want) {
				t.Errorf("deploys\n  %v\nwant\n  %v", deployed, want)
			}

			// What the flavour needs from the install and waits for after each deploy.
			text := out.String()
			wanted := map[matrix.Flavour][]string{
				matrix.Sidecar:    {"-f istio/sidecar/install.yaml --set", "deployment/istio-ingressgateway", "daemonset/istio-cni-node"},
				matrix.GatewayAPI: {"-f istio/sidecar/install.yaml -f istio/gateway-api/install.yaml --set", "daemonset/istio-cni-node", "-n istio-ingress wait --for=create deployment/meshdemo-gateway-istio", "-n istio-ingress rollout status deployment/meshdemo-gateway-istio"},
				matrix.Ambient: {"-f istio/sidecar/install.yaml -f istio/ambient/install.yaml --set", "daemonset/ztunnel", "daemonset/istio-cni-node",
					"-n istio-ingress wait --for=create deployment/meshdemo-gateway-istio", "-n meshdemo wait --for=create deployment/waypoint", "-n meshdemo rollout status deployment/waypoint"},
			}
			unwanted := map[matrix.Flavour][]string{
				matrix.Sidecar:    {"meshdemo-gateway-istio", "ztunnel", "deployment/waypoint"},
				matrix.GatewayAPI: {"istio-ingressgateway", "ztunnel", "deployment/waypoint"},
				matrix.Ambient:    {"istio-ingressgateway"},
			}
			for _, w := range append(wanted[flavour], "apply --server-side -k ", "E2E_FLAVOUR="+flavour.String(), FlavourLabel+"="+flavour.String()) {
				if !strings.Contains(text, w) {
					t.Errorf("the plan has no %q", w)
				}
			}
			for _, u := range unwanted[flavour] {
				if strings.Contains(text, u) {
					t.Errorf("the plan names %q, which the %s flavour does not have", u, flavour)
				}
			}
		})
	}
}

func TestKeepClusterDropsTeardown(t *testing.T) {
	c := config(t)
	c.KeepCluster = true
	flow, err := c.Flow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range flow {
		if s.Name == "teardown" {
			t.Fatalf("KeepCluster still tears down: %s", s)
		}
	}
}

func TestStepString(t *testing.T) {
	s := Step{Dir: "e2e", Env: []string{"A=b c"}, Args: []string{"go", "test", "-run", "X|Y"}}
	if got, want := s.String(), `(cd e2e && 'A=b c' go test -run 'X|Y')`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestCheckInstalledFlavour(t *testing.T) {
	for _, tt := range []struct {
		out        string
		want       matrix.Flavour
		installing bool
		err        string
	}{
		{"", matrix.Ambient, true, ""},
		{"", matrix.Ambient, false, "has no Istio: make istio-install FLAVOUR=ambient first"},
		{"istio-system:", matrix.Sidecar, true, ""},
		{"istio-system:", matrix.Sidecar, false, "installed before the flavours"},
		{"istio-system:", matrix.GatewayAPI, true, "runs Istio for the sidecar flavour, not gateway-api"},
		{"istio-system:ambient\n", matrix.Ambient, false, ""},
		{"istio-system:ambient\n", matrix.Ambient, true, ""},
		{"istio-system:ambient", matrix.Sidecar, true, "make kind-down kind-up istio-install FLAVOUR=sidecar"},
		{"istio-system:gateway-api", matrix.Ambient, false, "runs Istio for the gateway-api flavour, not ambient"},
		{"garbage", matrix.Sidecar, true, "unexpected answer"},
	} {
		err := CheckInstalledFlavour([]byte(tt.out), tt.want, "meshdemo", tt.installing)
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%q want %s installing %v: got %v, want %q", tt.out, tt.want, tt.installing, err, tt.err)
		}
	}
}

// TestRunnerCheck: a step's Check sees the command's output and its error fails the step.
func TestRunnerCheck(t *testing.T) {
	c := config(t)
	var seen string
	steps := []Step{{Name: "guard", Args: []string{"echo", "istio-system:ambient"}, Check: func(out []byte) error {
		seen = string(out)
		return CheckInstalledFlavour(out, matrix.Sidecar, "meshdemo", false)
	}}, {Name: "after", Args: []string{"false"}}}
	var out bytes.Buffer
	err := Runner{Root: c.Root, Out: &out, Stdout: &out, Stderr: &out}.Run(context.Background(), steps)
	if seen != "istio-system:ambient\n" {
		t.Errorf("Check saw %q", seen)
	}
	if err == nil || !strings.Contains(err.Error(), `step "guard"`) || !strings.Contains(err.Error(), "not sidecar") {
		t.Errorf("got %v", err)
	}
	if strings.Contains(out.String(), "[after]") {
		t.Errorf("a step ran after the guard failed:\n%s", out.String())
	}
}

// TestGatewayAPICRDs: the CRD directory the install applies is the module's experimental
// channel at the version the pinned Istio requires; the standard channel (no HTTPRoute retry)
// is refused.
func TestGatewayAPICRDs(t *testing.T) {
	c := config(t)
	version, dir, err := c.GatewayAPICRDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "sigs.k8s.io/gateway-api@" + version; !strings.Contains(dir, want) || filepath.Base(dir) != "experimental" {
		t.Errorf("CRD directory %s, want config/crd/experimental of %s", dir, want)
	}
	// The standard channel of the same module, as a kustomization (it ships none).
	standard := t.TempDir()
	files, err := filepath.Glob(filepath.Join(filepath.Dir(dir), "standard", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("standard CRDs: %v %v", files, err)
	}
	kust := "resources:\n"
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(standard, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		kust += "  - " + filepath.Base(f) + "\n"
	}
	if err := os.WriteFile(filepath.Join(standard, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ dir, want string }{
		{dir, ""},
		{standard, "channel standard, want experimental"},
	} {
		objs, err := Render(context.Background(), c.Root, tt.dir)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckGatewayAPICRDs(objs, version)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: got %v, want %q", tt.dir, err, tt.want)
		}
		if tt.want != "" && (err == nil || !strings.Contains(err.Error(), "no spec.rules[].retry")) {
			t.Errorf("%s: the missing retry field is not reported: %v", tt.dir, err)
		}
	}
	objs, err := Render(context.Background(), c.Root, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckGatewayAPICRDs(objs, "v1.5.0"); err == nil || !strings.Contains(err.Error(), "want v1.5.0") {
		t.Errorf("wrong bundle version accepted: %v", err)
	}
}

func TestPerFlavourProxies(t *testing.T) {
	for _, tt := range []struct {
		flavour                   matrix.Flavour
		logs, pods, cluster       string
		attemptCount, timedOutTry bool
	}{
		{matrix.Sidecar, "logs deploy/server2-v1 -c istio-proxy", "app=server1,version=v1", "outbound|8080|v1|server2.meshdemo.svc.cluster.local", true, true},
		{matrix.GatewayAPI, "logs deploy/server2-v1 -c istio-proxy", "app=server1,version=v1", "outbound|8080||server2-v1.meshdemo.svc.cluster.local", true, false},
		{matrix.Ambient, "logs deploy/waypoint -c istio-proxy", "gateway.networking.k8s.io/gateway-name=waypoint", "inbound-vip|8080|http|server2-v1.meshdemo.svc.cluster.local", false, false},
	} {
		c := flavourConfig(t, tt.flavour)
		if got := strings.Join(c.AccessLogs("server2-v1"), " "); !strings.Contains(got, tt.logs) {
			t.Errorf("%s: access logs %s, want %s", tt.flavour, got, tt.logs)
		}
		if err := GuardKubectl(c.AccessLogs("server2-v1")); err != nil {
			t.Errorf("%s: %v", tt.flavour, err)
		}
		pods, cluster := c.OutlierView()
		if pods != tt.pods || cluster != tt.cluster {
			t.Errorf("%s: outlier view %s %s, want %s %s", tt.flavour, pods, cluster, tt.pods, tt.cluster)
		}
		if got := c.AttemptCountHeader(); got != tt.attemptCount {
			t.Errorf("%s: attempt count header %v, want %v", tt.flavour, got, tt.attemptCount)
		}
		if got := c.RetriesTimedOutTry(); got != tt.timedOutTry {
			t.Errorf("%s: retries a timed-out try %v, want %v", tt.flavour, got, tt.timedOutTry)
		}
	}
}
