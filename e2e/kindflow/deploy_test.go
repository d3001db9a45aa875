package kindflow

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

func renderOf(t *testing.T, c Config, name string) []Object {
	t.Helper()
	objs, err := Render(context.Background(), c.Root, matrix.ScenarioDir(name))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// switchTo runs Deploy(to) on a model of a cluster that holds what from renders.
func switchTo(t *testing.T, c Config, from []Object, to string) *Cluster {
	t.Helper()
	steps, err := c.Deploy(context.Background(), to)
	if err != nil {
		t.Fatal(err)
	}
	m := NewCluster(from, func(dir string) ([]Object, error) { return Render(context.Background(), c.Root, dir) })
	for _, s := range steps {
		if err := m.Run(s); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestSwitchLeavesOnlyTheNewScenario: for every ordered pair of deploy/scenarios (rendered
// with kustomize, as `kubectl apply -k` renders them), switching from one to the other
// leaves exactly the objects of the new render: what the old one added is deleted, nothing
// the new one needs is.
func TestSwitchLeavesOnlyTheNewScenario(t *testing.T) {
	c := config(t)
	all, err := c.DeployedScenarios()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 12 {
		t.Fatalf("only %d scenarios: %v", len(all), all)
	}
	for _, from := range all {
		for _, to := range all {
			m := switchTo(t, c, renderOf(t, c, from), to)
			if diff := m.Equal(renderOf(t, c, to)); diff != "" {
				t.Errorf("%s -> %s: %s", from, to, diff)
			}
		}
	}
	t.Logf("%d pairs of %d scenarios", len(all)*len(all), len(all))
}

// TestSwitchToDefault names the cases the issue was about.
func TestSwitchToDefault(t *testing.T) {
	c := config(t)
	kinds := func(m *Cluster, what string) []string {
		var out []string
		for k := range m.Objects {
			if strings.Contains(k, what) {
				out = append(out, k)
			}
		}
		return out
	}
	m := switchTo(t, c, renderOf(t, c, "authz"), "default")
	if left := kinds(m, "authorizationpolicy."); len(left) > 0 {
		t.Errorf("authz -> default leaves %v", left)
	}
	m = switchTo(t, c, renderOf(t, c, "canary"), "default")
	if left := kinds(m, "-v2"); len(left) > 0 {
		t.Errorf("canary -> default leaves %v", left)
	}
	if got := kinds(m, "deployment.apps/"); len(got) != 4 {
		t.Errorf("default runs %v, want the four v1 Deployments", got)
	}
	// Going to the baseline deletes, of what its own flavour renders, only what scenarios add:
	// authz's policies, rate-limit's filter, the DestinationRules the Gateway API flavours add
	// next to their routes (outlier-detection, grpc-balancing). Everything else it deletes is
	// another flavour's.
	for _, f := range matrix.Flavours() {
		fc := c
		fc.Flavour = f
		stale, err := fc.Stale(context.Background(), fc.Flavour.Profile(Baseline))
		if err != nil {
			t.Fatal(err)
		}
		ours := map[string]bool{}
		all, err := fc.DeployedScenarios()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range all {
			if g, _, err := matrix.ParseProfile(d); err == nil && g == f {
				for _, o := range renderOf(t, fc, d) {
					ours[o.PruneKey()] = true
				}
			}
		}
		for _, o := range stale {
			added := o.Kind == "AuthorizationPolicy" || o.Kind == "EnvoyFilter" || (f.GatewayAPIRoutes() && o.Kind == "DestinationRule")
			if ours[o.PruneKey()] && !added {
				t.Errorf("%s: switching to %s deletes %s", f, fc.Flavour.Profile(Baseline), o.PruneKey())
			}
		}
	}
}

// TestSwitchAcrossFlavours: going back to sidecar from a Gateway API flavour deletes the
// ingress namespace (which holds only the flavour's Gateway, its options and what istiod made
// from them) and the per-version Services and routes; going to a Gateway API flavour never
// deletes a namespace it uses.
func TestSwitchAcrossFlavours(t *testing.T) {
	c := config(t)
	m := switchTo(t, c, renderOf(t, c, "ambient-authz"), Baseline)
	for k := range m.Objects {
		if strings.Contains(k, "gateway.networking.k8s.io") || strings.HasPrefix(k, matrix.GatewayAPI.IngressNamespace()+"/") || strings.HasSuffix(k, "/namespace/"+matrix.GatewayAPI.IngressNamespace()) {
			t.Errorf("ambient-authz -> %s leaves %s", Baseline, k)
		}
	}
	steps, err := c.Deploy(context.Background(), Baseline)
	if err != nil {
		t.Fatal(err)
	}
	last := steps[0]
	for _, s := range steps {
		if k, _ := parseKubectl(s.Args); k.Verb == "delete" {
			last = s
		}
	}
	if k, _ := parseKubectl(last.Args); k.Namespace != "" || !slices.Contains(last.Args, "namespace/"+matrix.GatewayAPI.IngressNamespace()) {
		t.Errorf("the last delete is %s, want the cluster-scoped one with namespace/%s (after the namespaced deletes)", last, matrix.GatewayAPI.IngressNamespace())
	}
	g := c
	g.Flavour = matrix.GatewayAPI
	stale, err := g.Stale(context.Background(), g.Flavour.Profile(Baseline))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range stale {
		if o.Kind == "Namespace" {
			t.Errorf("switching to %s deletes namespace %s", g.Flavour.Profile(Baseline), o.Name)
		}
	}
}

// TestSwitchPrunesAddedRoutingObjects: a scenario that adds its own VirtualService and
// DestinationRule (none of today's do: they patch the base ones) is pruned the same way.
// The scenario is a real kustomization in a scratch root, rendered by kustomize.
func TestSwitchPrunesAddedRoutingObjects(t *testing.T) {
	real := config(t)
	root := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rel := func(dir string) string {
		r, err := filepath.Rel(filepath.Join(root, dir), filepath.Join(real.Root, matrix.ScenarioDir("default")))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	write("deploy/scenarios/default/kustomization.yaml", "resources: ["+rel("deploy/scenarios/default")+"]\n")
	write("deploy/scenarios/extra-routes/kustomization.yaml", "resources: ["+rel("deploy/scenarios/extra-routes")+", routes.yaml]\n")
	write("deploy/scenarios/extra-routes/routes.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: server2-extra, namespace: meshdemo, labels: {app.kubernetes.io/part-of: meshdemo}}
spec:
  hosts: [server2-extra.meshdemo.svc.cluster.local]
  http: [{route: [{destination: {host: server2.meshdemo.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server2-extra, namespace: meshdemo, labels: {app.kubernetes.io/part-of: meshdemo}}
spec:
  host: server2-extra.meshdemo.svc.cluster.local
`)
	c := real
	c.Root = root
	stale, err := c.Stale(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, o := range stale {
		refs = append(refs, o.PruneKey())
	}
	want := []string{"meshdemo/destinationrule.networking.istio.io/server2-extra", "meshdemo/virtualservice.networking.istio.io/server2-extra"}
	if !slices.Equal(refs, want) {
		t.Errorf("stale %v, want %v", refs, want)
	}
	m := switchTo(t, c, renderOf(t, c, "extra-routes"), "default")
	if diff := m.Equal(renderOf(t, c, "default")); diff != "" {
		t.Error(diff)
	}
	// And the delete command names them as kubectl resolves them.
	steps, err := c.Deploy(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	var del []string
	for _, s := range steps {
		if k, _ := parseKubectl(s.Args); k.Verb == "delete" {
			del = s.Args
		}
	}
	if got := strings.Join(del, " "); !strings.HasSuffix(got, "delete --ignore-not-found -n meshdemo destinationrule.networking.istio.io/server2-extra virtualservice.networking.istio.io/server2-extra") {
		t.Errorf("delete step %q", got)
	}

	// An object without the part-of label is not meshdemo's to delete: refused.
	write("deploy/scenarios/unlabelled/kustomization.yaml", "resources: ["+rel("deploy/scenarios/unlabelled")+", cm.yaml]\n")
	write("deploy/scenarios/unlabelled/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: someone-else, namespace: meshdemo}\n")
	if _, err := c.Stale(context.Background(), "default"); err == nil || !strings.Contains(err.Error(), "lacks the label") {
		t.Errorf("unlabelled object: got %v", err)
	}
}

func TestDeployUnknownScenario(t *testing.T) {
	c := config(t)
	if _, err := c.Deploy(context.Background(), "no-such"); err == nil || !strings.Contains(err.Error(), "unknown scenario") {
		t.Fatalf("got %v", err)
	}
	a := c
	a.Flavour = matrix.Ambient
	if _, err := a.Deploy(context.Background(), "ambient-authz"); err == nil || !strings.Contains(err.Error(), `"ambient-authz" in the ambient flavour`) {
		t.Fatalf("a profile name given as a scenario: got %v", err)
	}
}
