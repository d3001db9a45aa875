package kindflow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// Deploy switches the cluster to a scenario (or preset) of the run's flavour, whatever was
// deployed before: `kubectl apply -k deploy/scenarios/<Flavour.Profile(name)>`, then `kubectl delete`
// of every object another deploy/scenarios directory (of any flavour) renders and this one
// does not (the AuthorizationPolicies of authz, the v2 Deployments of canary when going to
// default, the per-version Services and the istio-ingress objects of the Gateway API flavours
// when going to sidecar, ...), then: for each Gateway API Gateway it renders, wait until
// istiod has created its Deployment (the ingress gateway meshdemo-gateway-istio, the waypoint)
// and its rollout status; the rollout status of each StatefulSet and Deployment it renders. It
// is the one way meshdemo is deployed on kind: the baseline of `make e2e`, `make deploy
// SCENARIO=x FLAVOUR=f`, and every scenario switch of the suite.
//
// Pruning works from the rendered manifests, not from the cluster: apply never removes an
// object, and skaffold's kubectl deployer does not prune either. The set to delete is
// computed offline by Stale, and the dry run proves, for every pair of scenarios, that
// switching leaves exactly the new scenario's objects.
func (c Config) Deploy(ctx context.Context, name string) ([]Step, error) {
	profile := c.Flavour.Profile(name)
	dir := matrix.ScenarioDir(profile)
	if _, err := os.Stat(filepath.Join(c.Root, dir, "kustomization.yaml")); err != nil {
		all, _ := c.DeployedScenarios()
		return nil, fmt.Errorf("unknown scenario %q in the %s flavour (deploy/scenarios has %s): %w", name, c.Flavour, strings.Join(all, ", "), err)
	}
	objs, err := Render(ctx, c.Root, dir)
	if err != nil {
		return nil, err
	}
	stale, err := c.Stale(ctx, profile)
	if err != nil {
		return nil, err
	}
	step := "deploy " + name
	s := []Step{{Name: step, Args: c.kubectl("apply", "-k", dir)}}
	// One delete per namespace, namespaced objects first and cluster-scoped ones (a namespace
	// only another flavour renders) last, in a stable order.
	byNS := map[string][]string{}
	for _, o := range stale {
		byNS[o.Namespace] = append(byNS[o.Namespace], o.Ref())
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	slices.SortFunc(namespaces, func(a, b string) int {
		if (a == "") != (b == "") {
			if a == "" {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	for _, ns := range namespaces {
		args := c.kubectl("delete", "--ignore-not-found")
		if ns != "" {
			args = append(args, "-n", ns)
		}
		s = append(s, Step{Name: step, Args: append(args, byNS[ns]...)})
	}
	// What istiod creates from the Gateway API Gateways (the ingress gateway, the waypoint)
	// first: it is not in the render, so wait for it to exist, then for its rollout. Then the
	// StatefulSets: the database must be up before user-service can report ready (a fresh
	// cluster pulls the image and runs initdb, which may take longer than a Deployment).
	for _, o := range objs {
		d, ok, err := IstioCreated(o)
		if err != nil {
			return nil, err
		}
		if ok {
			s = append(s,
				Step{Name: step, Args: c.kubectl("-n", o.Namespace, "wait", "--for=create", "deployment/"+d, "--timeout=180s")},
				Step{Name: step, Args: c.kubectl("-n", o.Namespace, "rollout", "status", "deployment/"+d, "--timeout=180s")})
		}
	}
	for _, kind := range []string{"StatefulSet", "Deployment"} {
		for _, o := range objs {
			if o.Kind == kind {
				s = append(s, Step{Name: step, Args: c.kubectl("-n", o.Namespace, "rollout", "status", strings.ToLower(kind)+"/"+o.Name, "--timeout=180s")})
			}
		}
	}
	return s, nil
}

// DeployedScenarios are the kustomizations under deploy/scenarios: everything Deploy may
// have put in the cluster before.
func (c Config) DeployedScenarios() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(c.Root, matrix.ScenarioDir("")))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenarios under %s", matrix.ScenarioDir(""))
	}
	return out, nil
}

// PartOfLabel marks every meshdemo object (deploy/base labels; verify/ checks it).
const PartOfLabel = "app.kubernetes.io/part-of"

// Stale is what switching to the deploy/scenarios directory profile must delete: every object
// (by group, kind, namespace and name; the API version does not matter) that some directory
// under deploy/scenarios, of any flavour, renders and profile does not. It is a superset of "the previous scenario minus this one" for any
// previous scenario, so Deploy needs no record of what ran before. Sorted by Ref.
func (c Config) Stale(ctx context.Context, profile string) ([]Object, error) {
	name := profile
	target, err := Render(ctx, c.Root, matrix.ScenarioDir(profile))
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	inNamespace := map[string]bool{} // namespaces the target puts objects in
	for _, o := range target {
		keep[o.PruneKey()] = true
		inNamespace[o.Namespace] = true
	}
	all, err := c.DeployedScenarios()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Object
	for _, other := range all {
		objs, err := Render(ctx, c.Root, matrix.ScenarioDir(other))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			k := o.PruneKey()
			if keep[k] || seen[k] {
				continue
			}
			if l, _ := dig(o.Doc, "metadata", "labels", PartOfLabel).(string); l != "meshdemo" {
				// Only meshdemo's own objects are ever deleted (verify/ checks every one carries it).
				return nil, fmt.Errorf("%s %s in %s lacks the label %s=meshdemo: refusing to delete it", o.Kind, o.Name, other, PartOfLabel)
			}
			if o.Kind == "Namespace" && (o.Name == c.Namespace || inNamespace[o.Name]) {
				// Deleting a namespace deletes everything in it: only one the target renders
				// nothing into (istio-ingress when going back to sidecar) may go.
				return nil, fmt.Errorf("scenario %s does not render Namespace %s, which %s does, but keeps objects in it: refusing to delete the namespace", name, o.Name, other)
			}
			seen[k] = true
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Namespace+" "+a.Ref(), b.Namespace+" "+b.Ref()) })
	return out, nil
}

// Group is the API group of the object ("" for the core group).
func (o Object) Group() string {
	g, _, ok := strings.Cut(o.APIVersion, "/")
	if !ok {
		return "" // "v1": the core group has no name
	}
	return g
}

// Ref is the object as kubectl names it: resource.group/name (kind lower-cased, which
// kubectl resolves like the plural).
func (o Object) Ref() string {
	r := strings.ToLower(o.Kind)
	if g := o.Group(); g != "" {
		r += "." + g
	}
	return r + "/" + o.Name
}

// PruneKey identifies the object in a cluster whatever API version it is served at.
func (o Object) PruneKey() string { return o.Namespace + "/" + o.Ref() }

// Cluster is a model of which objects exist, for the dry run: `kubectl apply -k dir` adds
// what dir renders, `kubectl delete [-n ns] ref...` removes the named objects. Only object
// identity is modelled (what exists afterwards), which is all pruning is about.
type Cluster struct {
	Objects map[string]bool // PruneKey
	render  func(dir string) ([]Object, error)
}

// NewCluster starts a model holding objs; render renders a kustomization for apply steps.
func NewCluster(objs []Object, render func(dir string) ([]Object, error)) *Cluster {
	m := &Cluster{Objects: map[string]bool{}, render: render}
	for _, o := range objs {
		m.Objects[o.PruneKey()] = true
	}
	return m
}

// Run applies the effect of one step on the model; steps other than apply and delete leave
// it unchanged.
func (m *Cluster) Run(s Step) error {
	k, _ := parseKubectl(s.Args)
	switch k.Verb {
	case "apply":
		dir := flagValue(k.Args, "-k")
		if dir == "" {
			return fmt.Errorf("step %q: only `kubectl apply -k <scenario>` deploys meshdemo, got %s", s.Name, s)
		}
		objs, err := m.render(dir)
		if err != nil {
			return err
		}
		for _, o := range objs {
			m.Objects[o.PruneKey()] = true
		}
	case "delete":
		for _, ref := range positional(k.Args) {
			delete(m.Objects, k.Namespace+"/"+ref)
			if ns, ok := strings.CutPrefix(ref, "namespace/"); ok && k.Namespace == "" {
				for key := range m.Objects { // a namespace takes its objects with it
					if strings.HasPrefix(key, ns+"/") {
						delete(m.Objects, key)
					}
				}
			}
		}
	}
	return nil
}

// Equal reports the differences between the model and objs ("" when equal).
func (m *Cluster) Equal(objs []Object) string {
	want := map[string]bool{}
	for _, o := range objs {
		want[o.PruneKey()] = true
	}
	var extra, missing []string
	for k := range m.Objects {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if !m.Objects[k] {
			missing = append(missing, k)
		}
	}
	if len(extra)+len(missing) == 0 {
		return ""
	}
	slices.Sort(extra)
	slices.Sort(missing)
	return fmt.Sprintf("left behind %v, missing %v", extra, missing)
}

// kubectlCmd is a kubectl argv taken apart: the subcommand, the arguments after it, and
// the namespace given before it (kubectl -n ns exec ...).
type kubectlCmd struct {
	Verb      string
	Args      []string
	Namespace string
}

// parseKubectl reads argv as kubectl would (ok false when it is not kubectl). Global flags
// that take a value (--context, -n, ...) are skipped with their value.
func parseKubectl(argv []string) (kubectlCmd, bool) {
	if len(argv) == 0 || (argv[0] != "kubectl" && !strings.HasSuffix(argv[0], "/kubectl")) {
		return kubectlCmd{}, false
	}
	var k kubectlCmd
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if flagsWithValue[a] {
			if (a == "-n" || a == "--namespace") && i+1 < len(argv) {
				k.Namespace = argv[i+1]
			}
			i++
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		k.Verb, k.Args = a, argv[i+1:]
		if ns := flagValue(k.Args, "-n"); ns != "" {
			k.Namespace = ns
		}
		return k, true
	}
	return kubectlCmd{}, true
}

var flagsWithValue = map[string]bool{
	"--context": true, "-n": true, "--namespace": true, "--kubeconfig": true, "--cluster": true, "--user": true,
	"-c": true, "--container": true, "-l": true, "--selector": true, "-o": true, "-k": true, "-f": true,
}

// positional is args without flags and their values, up to "--".
func positional(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return out
		case flagsWithValue[a]:
			i++
		case strings.HasPrefix(a, "-"):
		default:
			out = append(out, a)
		}
	}
	return out
}

// flagValue is the value of the last "flag value" or "flag=value" in args.
func flagValue(args []string, flag string) string {
	v := ""
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == flag && i+1 < len(args) {
			v = args[i+1]
		}
		if after, ok := strings.CutPrefix(a, flag+"="); ok {
			v = after
		}
	}
	return v
}
