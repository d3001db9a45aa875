package kindpath

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func config(t *testing.T) Config {
	t.Helper()
	c, err := Config{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func flavourConfig(t *testing.T, flavour string) Config {
	t.Helper()
	c, err := Config{Flavour: flavour}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDryRun is the proof that the kind path is well formed where no cluster can run, in every
// flavour: every command it would run is printed, every manifest it would apply renders with
// `kubectl kustomize` and passes Validate, every file it names exists.
func TestDryRun(t *testing.T) {
	total := 0
	for _, flavour := range Flavours {
		t.Run(flavour, func(t *testing.T) {
			c := flavourConfig(t, flavour)
			plan, err := Plan(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			total += len(plan)
			var out bytes.Buffer
			r := Runner{Root: c.Root, DryRun: true, Out: &out}
			if err := r.Run(context.Background(), plan); err != nil {
				t.Fatal(err)
			}
			t.Logf("kind path, flavour %s, %d commands:\n%s", flavour, len(plan), out.String())
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != len(plan) {
				t.Fatalf("printed %d lines for %d steps", len(lines), len(plan))
			}

			// The phases come in this order, each at least once.
			order := []string{"kind", "istioctl", "skaffold", "cluster", "istio", "images", "deploy " + Baseline, "test", "teardown"}
			last := -1
			for _, phase := range order {
				i := slices.IndexFunc(plan, func(s Step) bool { return s.Name == phase })
				if i < 0 {
					t.Fatalf("no %q step", phase)
				}
				if i < last {
					t.Errorf("%q comes before an earlier phase", phase)
				}
				last = i
			}
			if !plan[len(plan)-1].Always || plan[len(plan)-1].Name != "teardown" {
				t.Errorf("the last step must be an Always teardown, got %+v", plan[len(plan)-1])
			}
			applied := map[string]bool{}
			for _, s := range plan {
				if s.Kustomize != "" {
					applied[s.Kustomize] = true
				}
			}
			for _, name := range append([]string{Baseline}, Scenarios...) {
				if !applied[ScenarioDir(c.Profile(name))] {
					t.Errorf("scenario %s is never applied", c.Profile(name))
				}
			}
			if len(applied) != 1+len(Scenarios) {
				t.Errorf("applies %d kustomizations, want %d: %v", len(applied), 1+len(Scenarios), applied)
			}
			// What the flavour needs from the install and waits for after each deploy.
			text := out.String()
			want := map[string][]string{
				Sidecar:    {"-f istio/sidecar/install.yaml --set", "deployment/istio-ingressgateway", "daemonset/istio-cni-node"},
				GatewayAPI: {"-f istio/sidecar/install.yaml -f istio/gateway-api/install.yaml --set", "daemonset/istio-cni-node", "-n istio-ingress wait --for=create deployment/meshdemo-gateway-istio", "-n istio-ingress rollout status deployment/meshdemo-gateway-istio"},
				Ambient: {"-f istio/sidecar/install.yaml -f istio/ambient/install.yaml --set", "daemonset/ztunnel", "daemonset/istio-cni-node",
					"-n istio-ingress wait --for=create deployment/meshdemo-gateway-istio", "-n meshdemo wait --for=create deployment/waypoint", "-n meshdemo rollout status deployment/waypoint"},
			}
			unwanted := map[string][]string{
				Sidecar:    {"meshdemo-gateway-istio", "ztunnel", "deployment/waypoint"},
				GatewayAPI: {"istio-ingressgateway", "ztunnel", "deployment/waypoint"},
				Ambient:    {"istio-ingressgateway"},
			}
			for _, w := range append(want[flavour], "apply --server-side -k ", "E2E_FLAVOUR="+flavour, FlavourLabel+"="+flavour) {
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
	t.Logf("%d dry-run commands in %d flavours", total, len(Flavours))
}

// Every flavour has every preset and scenario under deploy/scenarios (written by verify's
// `make scenarios` under verify/manifests Profile's names, which Config.Profile repeats), and
// nothing else is there.
func TestEveryFlavourHasEveryScenario(t *testing.T) {
	c := config(t)
	all, err := c.DeployedScenarios()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range Flavours {
		fc := flavourConfig(t, f)
		for _, name := range append([]string{"default", Baseline}, Scenarios...) {
			want = append(want, fc.Profile(name))
		}
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("deploy/scenarios has %v\nwant %v", all, want)
	}
	if _, err := (Config{Flavour: "istio-gateway"}).WithDefaults(); err == nil || !strings.Contains(err.Error(), "unknown flavour") {
		t.Errorf("unknown flavour: %v", err)
	}
}

// TestEveryComponentIsTested keeps the suite in step with istio/sidecar/components: every scenario
// component has a kustomization, is applied by the plan and has its kind test.
func TestEveryComponentIsTested(t *testing.T) {
	c := config(t)
	entries, err := os.ReadDir(filepath.Join(c.Root, "istio", "components"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(c.Root, "e2e", "suite", "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no e2e/suite tests: %v", err)
	}
	var suite []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		suite = append(suite, b...)
	}
	var components []string
	for _, e := range entries {
		if e.IsDir() {
			components = append(components, e.Name())
		}
	}
	if len(components) == 0 {
		t.Fatal("no components found")
	}
	for _, name := range components {
		if !slices.Contains(Scenarios, name) {
			t.Errorf("istio/sidecar/components/%s is not in Scenarios", name)
		}
		if _, err := os.Stat(filepath.Join(c.Root, ScenarioDir(name), "kustomization.yaml")); err != nil {
			t.Errorf("scenario %s: %v", name, err)
		}
		if !bytes.Contains(suite, []byte(`withScenario(t, "`+name+`"`)) {
			t.Errorf("no test in e2e/suite calls withScenario(t, %q, ...)", name)
		}
	}
	for _, name := range Scenarios {
		if !slices.Contains(components, name) {
			t.Errorf("Scenarios lists %s, which has no istio/sidecar/components folder", name)
		}
	}
	// The other flavours have the same scenarios, each with its deploy/scenarios directory
	// (the suite's tests are the same for every flavour: withScenario deploys Profile(name)).
	for _, f := range []string{GatewayAPI, Ambient} {
		fc := flavourConfig(t, f)
		entries, err := os.ReadDir(filepath.Join(c.Root, "istio", f, "components"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			if e.IsDir() {
				got = append(got, e.Name())
			}
		}
		if want := slices.Sorted(slices.Values(Scenarios)); !slices.Equal(got, want) {
			t.Errorf("istio/%s/components has %v, want %v", f, got, want)
		}
		for _, name := range Scenarios {
			if _, err := os.Stat(filepath.Join(c.Root, ScenarioDir(fc.Profile(name)), "kustomization.yaml")); err != nil {
				t.Errorf("scenario %s: %v", fc.Profile(name), err)
			}
		}
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

// TestValidateRejects shows Validate is not a rubber stamp.
func TestValidateRejects(t *testing.T) {
	c := config(t)
	good, err := Render(context.Background(), c.Root, ScenarioDir(Baseline))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(good); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	tests := map[string]struct {
		yaml string
		want string
	}{
		"pulled image": {want: "imagePullPolicy", yaml: `apiVersion: apps/v1
kind: Deployment
metadata: {name: server2-v1, namespace: meshdemo}
spec:
  template:
    metadata: {labels: {app: server2, version: v1}}
    spec:
      containers: [{name: server2, image: meshdemo/server2:dev, imagePullPolicy: IfNotPresent}]
`},
		"beta API": {want: "want v1", yaml: `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: server2, namespace: meshdemo}
`},
		"other namespace": {want: "namespace", yaml: `apiVersion: v1
kind: ConfigMap
metadata: {name: x, namespace: default}
`},
		"no name": {want: "metadata.name", yaml: `apiVersion: v1
kind: ConfigMap
metadata: {namespace: meshdemo}
`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			objs, err := Decode([]byte(tt.yaml))
			if err == nil {
				err = c.Validate(append(slices.Clone(good), objs...))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestStepString(t *testing.T) {
	s := Step{Dir: "e2e", Env: []string{"A=b c"}, Args: []string{"go", "test", "-run", "X|Y"}}
	if got, want := s.String(), `(cd e2e && 'A=b c' go test -run 'X|Y')`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestValidateRejectsPerFlavour: what each flavour's render must hold, proven by fixtures.
func TestValidateRejectsPerFlavour(t *testing.T) {
	without := func(objs []Object, kind, name string) []Object {
		return slices.DeleteFunc(slices.Clone(objs), func(o Object) bool { return o.Kind == kind && o.Name == name })
	}
	decode := func(t *testing.T, y string) []Object {
		objs, err := Decode([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	tests := []struct {
		name, flavour string
		edit          func(t *testing.T, good []Object) []Object
		want          string
	}{
		{"VirtualService in gateway-api", GatewayAPI, func(t *testing.T, g []Object) []Object {
			return append(g, decode(t, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: server1, namespace: meshdemo}\n")...)
		}, "no VirtualService and no Istio Gateway"},
		{"HTTPRoute at v1beta1", GatewayAPI, func(t *testing.T, g []Object) []Object {
			return append(g, decode(t, "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\nmetadata: {name: x, namespace: meshdemo}\n")...)
		}, "want gateway.networking.k8s.io/v1"},
		{"no ingress Gateway", GatewayAPI, func(t *testing.T, g []Object) []Object { return without(g, "Gateway", "meshdemo-gateway") },
			"no Gateway API Gateway (class istio) listener on port 80 for host client.meshdemo"},
		{"a gateway class istiod does not deploy", GatewayAPI, func(t *testing.T, g []Object) []Object {
			return append(g, decode(t, "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: other, namespace: meshdemo}\nspec: {gatewayClassName: envoy}\n")...)
		}, "gatewayClassName \"envoy\""},
		{"no waypoint", Ambient, func(t *testing.T, g []Object) []Object { return without(g, "Gateway", "waypoint") }, "no waypoint"},
		{"namespace still injected", Ambient, func(t *testing.T, g []Object) []Object {
			return append(without(g, "Namespace", "meshdemo"), decode(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: meshdemo, labels: {istio-injection: enabled}}\n")...)
		}, "dataplane-mode=ambient"},
		{"ingress namespace in sidecar", Sidecar, func(t *testing.T, g []Object) []Object {
			return append(g, decode(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: istio-ingress}\n")...)
		}, `namespace "istio-ingress"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := flavourConfig(t, tt.flavour)
			good, err := Render(context.Background(), c.Root, ScenarioDir(c.Profile(Baseline)))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(good); err != nil {
				t.Fatalf("%s: %v", c.Profile(Baseline), err)
			}
			if err := c.Validate(tt.edit(t, good)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestCheckInstalledFlavour(t *testing.T) {
	for _, tt := range []struct {
		out, want  string
		installing bool
		err        string
	}{
		{"", Ambient, true, ""},
		{"", Ambient, false, "has no Istio: make istio-install FLAVOUR=ambient first"},
		{"istio-system:", Sidecar, true, ""},
		{"istio-system:", Sidecar, false, "installed before the flavours"},
		{"istio-system:", GatewayAPI, true, "runs Istio for the sidecar flavour, not gateway-api"},
		{"istio-system:ambient\n", Ambient, false, ""},
		{"istio-system:ambient\n", Ambient, true, ""},
		{"istio-system:ambient", Sidecar, true, "make kind-down kind-up istio-install FLAVOUR=sidecar"},
		{"istio-system:gateway-api", Ambient, false, "runs Istio for the gateway-api flavour, not ambient"},
		{"garbage", Sidecar, true, "unexpected answer"},
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
		return CheckInstalledFlavour(out, Sidecar, "meshdemo", false)
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
		flavour, logs, pods, cluster string
		attemptCount, timedOutTry    bool
	}{
		{Sidecar, "logs deploy/server2-v1 -c istio-proxy", "app=server1,version=v1", "outbound|8080|v1|server2.meshdemo.svc.cluster.local", true, true},
		{GatewayAPI, "logs deploy/server2-v1 -c istio-proxy", "app=server1,version=v1", "outbound|8080||server2-v1.meshdemo.svc.cluster.local", true, false},
		{Ambient, "logs deploy/waypoint -c istio-proxy", "gateway.networking.k8s.io/gateway-name=waypoint", "inbound-vip|8080|http|server2-v1.meshdemo.svc.cluster.local", false, false},
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
