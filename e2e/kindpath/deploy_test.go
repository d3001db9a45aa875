package kindpath

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func renderOf(t *testing.T, c Config, name string) []Object {
	t.Helper()
	objs, err := Render(context.Background(), c.Root, ScenarioDir(name))
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
	for _, f := range Flavours {
		fc := c
		fc.Flavour = f
		stale, err := fc.Stale(context.Background(), fc.Profile(Baseline))
		if err != nil {
			t.Fatal(err)
		}
		ours := map[string]bool{}
		all, err := fc.DeployedScenarios()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range all {
			if (f == Sidecar && !strings.HasPrefix(d, GatewayAPI+"-") && !strings.HasPrefix(d, Ambient+"-")) || (f != Sidecar && strings.HasPrefix(d, f+"-")) {
				for _, o := range renderOf(t, fc, d) {
					ours[o.PruneKey()] = true
				}
			}
		}
		for _, o := range stale {
			added := o.Kind == "AuthorizationPolicy" || o.Kind == "EnvoyFilter" || (f != Sidecar && o.Kind == "DestinationRule")
			if ours[o.PruneKey()] && !added {
				t.Errorf("%s: switching to %s deletes %s", f, fc.Profile(Baseline), o.PruneKey())
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
		if strings.Contains(k, "gateway.networking.k8s.io") || strings.HasPrefix(k, IngressNamespace+"/") || strings.HasSuffix(k, "/namespace/"+IngressNamespace) {
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
	if k, _ := parseKubectl(last.Args); k.Namespace != "" || !slices.Contains(last.Args, "namespace/"+IngressNamespace) {
		t.Errorf("the last delete is %s, want the cluster-scoped one with namespace/%s (after the namespaced deletes)", last, IngressNamespace)
	}
	g := c
	g.Flavour = GatewayAPI
	stale, err := g.Stale(context.Background(), g.Profile(Baseline))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range stale {
		if o.Kind == "Namespace" {
			t.Errorf("switching to %s deletes namespace %s", g.Profile(Baseline), o.Name)
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
		r, err := filepath.Rel(filepath.Join(root, dir), filepath.Join(real.Root, ScenarioDir("default")))
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
	a.Flavour = Ambient
	if _, err := a.Deploy(context.Background(), "ambient-authz"); err == nil || !strings.Contains(err.Error(), `"ambient-authz" in the ambient flavour`) {
		t.Fatalf("a profile name given as a scenario: got %v", err)
	}
}

// TestCheckPlanRejects shows the plan check is not a rubber stamp: each defect the kind path
// had, or could get, is refused.
func TestCheckPlanRejects(t *testing.T) {
	c := config(t)
	ctx := context.Background()
	good, err := Plan(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(good, func(s Step) bool { return s.Name == "test" })
	kubectl := c.kubectl
	tests := map[string]struct {
		edit func([]Step) []Step
		want string
	}{
		"skaffold run deploys next to kubectl apply (the double deploy)": {want: "skaffold may only build", edit: func(p []Step) []Step {
			return slices.Insert(p, i, Step{Name: "deploy", Args: []string{"bin/skaffold", "run", "-p", Baseline, "--tag", "dev"}})
		}},
		"the baseline applied twice": {want: "deployed twice in a row", edit: func(p []Step) []Step {
			return slices.Insert(p, i, Step{Name: "again", Args: kubectl("apply", "-k", ScenarioDir(Baseline))})
		}},
		"a scenario left out": {want: "deploys " + Scenarios[len(Scenarios)-1] + " 0 times", edit: func(p []Step) []Step {
			// The last scenario: its switch, its calls and the return to the baseline.
			j := slices.IndexFunc(p, func(s Step) bool { return s.Name == "suite: deploy "+Scenarios[len(Scenarios)-1] })
			return slices.Delete(p, j, len(p)-1)
		}},
		"apply of a file": {want: "kubectl apply -k", edit: func(p []Step) []Step {
			return slices.Insert(p, i, Step{Name: "x", Args: kubectl("apply", "-f", "istio/sidecar/base/gateway.yaml")})
		}},
		"no prune after authz": {want: "left behind", edit: func(p []Step) []Step {
			return slices.DeleteFunc(p, func(s Step) bool {
				k, _ := parseKubectl(s.Args)
				return k.Verb == "delete"
			})
		}},
		"a meshed call from istio-proxy (the old proxyCurl)": {want: "istio-proxy container", edit: func(p []Step) []Step {
			return slices.Insert(p, i+1, Step{Name: "suite: authz call", Args: kubectl("-n", "meshdemo", "exec", "deploy/server1-v1", "-c", "istio-proxy", "--",
				"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", "http://user-service:8080/api/users")})
		}},
		"exec without a container": {want: "without -c", edit: func(p []Step) []Step {
			return slices.Insert(p, i+1, Step{Name: "x", Args: kubectl("-n", "meshdemo", "exec", "deploy/server1-v1", "--", "/workload", "get", "http://server2:8080/")})
		}},
		"exec into a Deployment the scenario does not run": {want: "no Deployment server9-v1", edit: func(p []Step) []Step {
			return slices.Insert(p, i+1, Step{Name: "x", Args: kubectl("-n", "meshdemo", "exec", "deploy/server9-v1", "-c", "server9", "--", "/workload", "get", "http://server2:8080/")})
		}},
		"the Gateway API CRDs applied client-side": {want: "--server-side", edit: func(p []Step) []Step {
			return slices.Clone(replaceArg(p, "--server-side", "--validate=true"))
		}},
		"no Gateway API CRDs before the first deploy": {want: "before the Gateway API CRDs are installed", edit: func(p []Step) []Step {
			return slices.DeleteFunc(p, func(s Step) bool { return slices.Contains(s.Args, "--server-side") })
		}},
		"a scenario of another flavour": {want: "not a scenario of the sidecar flavour", edit: func(p []Step) []Step {
			return slices.Insert(p, i+1, Step{Name: "x", Args: kubectl("apply", "-k", ScenarioDir("ambient-authz"))})
		}},
		"another flavour's baseline": {want: "gateway-api-canary, which is not a scenario of the sidecar flavour", edit: func(p []Step) []Step {
			return replaceArg(p, ScenarioDir(Baseline), ScenarioDir("gateway-api-canary"))
		}},
		"a scenario before the tests": {want: "deploys authz before the tests, want the baseline canary", edit: func(p []Step) []Step {
			return slices.Insert(p, i, Step{Name: "x", Args: kubectl("apply", "-k", ScenarioDir("authz"))})
		}},
		"curl in an app container": {want: "only /workload", edit: func(p []Step) []Step {
			return slices.Insert(p, i+1, Step{Name: "x", Args: kubectl("-n", "meshdemo", "exec", "deploy/server1-v1", "-c", "server1", "--", "curl", "http://server2:8080/")})
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := c.CheckPlan(ctx, tt.edit(slices.Clone(good)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// replaceArg replaces an argument in every step (the steps are copied, not edited in place).
func replaceArg(p []Step, old, new string) []Step {
	out := make([]Step, len(p))
	for i, s := range p {
		s.Args = slices.Clone(s.Args)
		for j, a := range s.Args {
			if a == old {
				s.Args[j] = new
			}
		}
		out[i] = s
	}
	return out
}
