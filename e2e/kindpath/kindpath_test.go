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

// TestDryRun is the proof that the kind path is well formed where no cluster can run: every
// command it would run is printed, every manifest it would apply renders with `kubectl
// kustomize` and passes Validate, every file it names exists.
func TestDryRun(t *testing.T) {
	c := config(t)
	plan, err := Plan(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := Runner{Root: c.Root, DryRun: true, Out: &out}
	if err := r.Run(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	t.Logf("kind path, %d commands:\n%s", len(plan), out.String())
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
		if !applied[ScenarioDir(name)] {
			t.Errorf("scenario %s is never applied", name)
		}
	}
}

// TestEveryComponentIsTested keeps the suite in step with istio/components: every scenario
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
			t.Errorf("istio/components/%s is not in Scenarios", name)
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
			t.Errorf("Scenarios lists %s, which has no istio/components folder", name)
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
