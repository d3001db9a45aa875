package kindpath

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Scenarios are the Istio scenario components the kind suite applies, one test each (the
// test name is Test + the scenario in CamelCase, see e2e/suite/kind_test.go and
// kind_traffic_test.go).
var Scenarios = []string{
	"header-routing", "weighted-split", "route-timeout", "fault-abort", "fault-delay",
	"retries", "outlier-detection", "mirroring", "authz", "hardening",
	"grpc-balancing", "rate-limit",
}

// Plan is everything the kind path would run, in order: the flow with, after the test step,
// what the suite runs on the cluster: the baseline's meshed calls, then for each scenario
// its switch, its meshed calls and the switch back to the baseline. It renders and validates
// every manifest on the way and checks the whole sequence (CheckPlan), so an error means
// the path is not well formed.
func Plan(ctx context.Context, c Config) ([]Step, error) {
	flow, err := c.Flow(ctx)
	if err != nil {
		return nil, err
	}
	var plan []Step
	suite := func(name string, steps ...Step) {
		for _, st := range steps {
			st.Name = "suite: " + name
			plan = append(plan, st)
		}
	}
	calls := func(scenario string) {
		for _, call := range MeshCalls[scenario] {
			suite(scenario+" call", Step{Args: c.Exec(call)})
		}
	}
	restore, err := c.Deploy(ctx, Baseline)
	if err != nil {
		return nil, err
	}
	for _, s := range flow {
		plan = append(plan, s)
		if s.Name != "test" {
			continue
		}
		calls(Baseline)
		for _, name := range Scenarios {
			apply, err := c.Deploy(ctx, name)
			if err != nil {
				return nil, err
			}
			suite("deploy "+name, apply...)
			calls(name)
			suite("deploy "+Baseline, restore...)
		}
	}
	for _, s := range plan {
		if err := c.check(ctx, s); err != nil {
			return nil, err
		}
	}
	version, dir, err := c.GatewayAPICRDs(ctx)
	if err != nil {
		return nil, err
	}
	crds, err := Render(ctx, c.Root, dir)
	if err != nil {
		return nil, err
	}
	if err := CheckGatewayAPICRDs(crds, version); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	// The meshed calls above are the table; the tests could still build their own.
	if err := CheckSuiteSources(filepath.Join(c.Root, "e2e", "suite")); err != nil {
		return nil, err
	}
	if err := c.CheckPlan(ctx, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// CheckPlan checks the sequence as a whole, following a model of the cluster (Cluster):
//   - one deploy path: skaffold only builds (`skaffold run`, `deploy` or `dev` would deploy
//     its own image references next to the `kubectl apply -k` of the same scenario and roll
//     everything out twice), and every apply is `kubectl apply -k deploy/scenarios/<name>`;
//   - one deploy per scenario: the baseline once before the tests, then every scenario of
//     Scenarios once, each followed by one return to the baseline; never the same scenario
//     twice in a row;
//   - after each switch the cluster holds exactly what the new scenario renders (nothing of
//     the previous one is left behind);
//   - every kubectl exec passes CheckExec against the scenario deployed at that moment (no
//     meshed call from the istio-proxy container).
func (c Config) CheckPlan(ctx context.Context, plan []Step) error {
	render := func(dir string) ([]Object, error) { return Render(ctx, c.Root, dir) }
	cluster := NewCluster(nil, render)
	var current []Object // what the last switch deployed
	var currentName, pending string
	deploys := map[string]int{}
	beforeTests, testSeen := 0, false
	_, crdDir, err := c.GatewayAPICRDs(ctx)
	if err != nil {
		return err
	}
	crdApplied := false
	settle := func() error {
		if pending == "" {
			return nil
		}
		if diff := cluster.Equal(current); diff != "" {
			return fmt.Errorf("after switching to %s the cluster is not what %s renders: %s", pending, pending, diff)
		}
		pending = ""
		return nil
	}
	for i, s := range plan {
		if len(s.Args) == 0 {
			return fmt.Errorf("step %d %q has no command", i, s.Name)
		}
		if filepath.Base(s.Args[0]) == "skaffold" && (len(s.Args) < 2 || s.Args[1] != "build") {
			return fmt.Errorf("step %q: %s: skaffold may only build; the one deploy path is `kubectl apply -k` (Deploy)", s.Name, s)
		}
		k, isKubectl := parseKubectl(s.Args)
		if pending != "" && (!isKubectl || (k.Verb != "delete" && k.Verb != "rollout" && k.Verb != "wait")) {
			if err := settle(); err != nil {
				return err
			}
		}
		if s.Name == "test" {
			testSeen = true
		}
		switch {
		case isKubectl && k.Verb == "apply" && flagValue(k.Args, "-k") == crdDir && s.Name == "istio":
			// The Gateway API CRDs, part of the Istio install: not meshdemo's objects.
			if !slices.Contains(k.Args, "--server-side") {
				return fmt.Errorf("step %q: %s: the Gateway API CRDs are applied --server-side (too large for the last-applied annotation)", s.Name, s)
			}
			crdApplied = true
			continue
		case isKubectl && k.Verb == "apply" && !crdApplied:
			return fmt.Errorf("step %q: %s before the Gateway API CRDs are installed (every prune may name their kinds)", s.Name, s)
		case isKubectl && k.Verb == "apply":
			dir := flagValue(k.Args, "-k")
			name, ok := strings.CutPrefix(dir, ScenarioDir(""))
			if !ok {
				return fmt.Errorf("step %q: %s: deploy with `kubectl apply -k %s<name>`", s.Name, s, ScenarioDir(""))
			}
			if name == currentName {
				return fmt.Errorf("step %q: %s deployed twice in a row", s.Name, name)
			}
			if name != c.Profile(Baseline) && !slices.ContainsFunc(Scenarios, func(sc string) bool { return c.Profile(sc) == name }) {
				return fmt.Errorf("step %q: deploys %s, which is not a scenario of the %s flavour", s.Name, name, c.flavour())
			}
			if !testSeen {
				if name != c.Profile(Baseline) {
					return fmt.Errorf("step %q: deploys %s before the tests, want the baseline %s", s.Name, name, c.Profile(Baseline))
				}
				beforeTests++
			} else {
				deploys[name]++
			}
			objs, err := render(dir)
			if err != nil {
				return err
			}
			current, currentName, pending = objs, name, name
		case isKubectl && k.Verb == "exec":
			if current == nil {
				return fmt.Errorf("step %q: exec before anything is deployed", s.Name)
			}
			if err := CheckExec(current, s.Args); err != nil {
				return fmt.Errorf("step %q: %w", s.Name, err)
			}
		}
		if err := cluster.Run(s); err != nil {
			return err
		}
	}
	if err := settle(); err != nil {
		return err
	}
	if beforeTests != 1 {
		return fmt.Errorf("%d deploys before the tests, want 1 (the baseline %s)", beforeTests, c.Profile(Baseline))
	}
	for _, name := range Scenarios {
		if p := c.Profile(name); deploys[p] != 1 {
			return fmt.Errorf("the suite deploys %s %d times, want 1", p, deploys[p])
		}
	}
	if p := c.Profile(Baseline); deploys[p] != len(Scenarios) {
		return fmt.Errorf("the suite returns to %s %d times, want %d (once after each scenario)", p, deploys[p], len(Scenarios))
	}
	return nil
}

// check validates one step: the files and folders it names exist, and a kustomization it
// applies renders into valid objects.
func (c Config) check(ctx context.Context, s Step) error {
	if len(s.Args) == 0 {
		return fmt.Errorf("step %q has no command", s.Name)
	}
	for i, a := range s.Args {
		if i > 0 && (s.Args[i-1] == "-f" || s.Args[i-1] == "--config" || s.Args[i-1] == "-k") {
			p := a
			if !filepath.IsAbs(p) {
				p = filepath.Join(c.Root, s.Dir, a)
			}
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("step %q: %w", s.Name, err)
			}
		}
	}
	if s.Dir != "" {
		if _, err := os.Stat(filepath.Join(c.Root, s.Dir)); err != nil {
			return fmt.Errorf("step %q: %w", s.Name, err)
		}
	}
	if s.Kustomize == "" {
		return nil
	}
	objs, err := Render(ctx, c.Root, s.Kustomize)
	if err != nil {
		return err
	}
	if err := c.Validate(objs); err != nil {
		return fmt.Errorf("%s: %w", s.Kustomize, err)
	}
	return nil
}

// istioAPIs are the only Istio API versions the manifests may use (STYLE.md).
var istioAPIs = map[string]bool{
	"networking.istio.io/v1": true, "security.istio.io/v1": true, "telemetry.istio.io/v1": true,
}

// Validate checks what the kind flow relies on in a rendered scenario of the run's flavour:
// every object in the namespace (or, in gateway-api and ambient, in the ingress namespace),
// Istio objects at v1 and Gateway API objects at gateway.networking.k8s.io/v1, every
// Deployment on a loaded :dev image that is never pulled and labelled with its version, the
// ingress answering for the documented Host on port 80 (an Istio Gateway server in sidecar; a
// Gateway API Gateway listener of class istio in the others, which have no VirtualService and
// no Istio Gateway), the namespace in ambient mode with a waypoint (ambient), and the four
// Services present.
func (c Config) Validate(objs []Object) error {
	var problems []string
	bad := func(o Object, f string, a ...any) {
		problems = append(problems, fmt.Sprintf("%s %s: %s", o.Kind, o.Name, fmt.Sprintf(f, a...)))
	}
	namespaces := []string{c.Namespace}
	if c.flavour() != Sidecar {
		namespaces = append(namespaces, IngressNamespace)
	}
	services := map[string]bool{}
	ingressHost, waypoint, ambientNS := false, false, false
	for _, o := range objs {
		switch {
		case o.Kind == "Namespace":
			if !slices.Contains(namespaces, o.Name) {
				bad(o, "unexpected namespace in the %s flavour", c.flavour())
			}
			if o.Name == c.Namespace {
				labels, _ := dig(o.Doc, "metadata", "labels").(map[string]any)
				ambientNS = labels["istio.io/dataplane-mode"] == "ambient" && labels["istio-injection"] == nil
			}
			continue
		case !slices.Contains(namespaces, o.Namespace):
			bad(o, "namespace %q, want one of %v", o.Namespace, namespaces)
		}
		if strings.Contains(o.APIVersion, "istio.io/") && !istioAPIs[o.APIVersion] &&
			(o.Kind != "EnvoyFilter" || o.APIVersion != "networking.istio.io/v1alpha3") { // EnvoyFilter has no v1
			bad(o, "API version %s, want v1", o.APIVersion)
		}
		if o.Group() == "gateway.networking.k8s.io" && o.APIVersion != "gateway.networking.k8s.io/v1" {
			bad(o, "API version %s, want gateway.networking.k8s.io/v1", o.APIVersion)
		}
		if c.flavour() != Sidecar && o.Group() == "networking.istio.io" && (o.Kind == "VirtualService" || o.Kind == "Gateway") {
			bad(o, "the %s flavour has no VirtualService and no Istio Gateway", c.flavour())
		}
		switch o.Kind {
		case "Service":
			if o.Namespace == c.Namespace {
				services[o.Name] = true
			}
		case "Deployment":
			checkDeployment(o, bad)
		case "Gateway":
			if o.Group() == "networking.istio.io" && c.flavour() == Sidecar {
				for _, srv := range list(dig(o.Doc, "spec", "servers")) {
					for _, h := range list(dig(srv, "hosts")) {
						if h == c.Host || strings.HasSuffix(fmt.Sprint(h), "/"+c.Host) {
							ingressHost = true
						}
					}
				}
			}
			if o.Group() == "gateway.networking.k8s.io" && c.flavour() != Sidecar {
				if _, _, err := IstioCreated(o); err != nil {
					bad(o, "%v", err)
				}
				switch dig(o.Doc, "spec", "gatewayClassName") {
				case "istio":
					for _, l := range list(dig(o.Doc, "spec", "listeners")) {
						if dig(l, "hostname") == c.Host && fmt.Sprint(dig(l, "port")) == "80" {
							ingressHost = true
						}
					}
				case "istio-waypoint":
					waypoint = o.Namespace == c.Namespace
				}
			}
		}
	}
	for _, w := range Workloads {
		if !services[w] {
			problems = append(problems, "no Service "+w)
		}
	}
	if !ingressHost {
		what := "Istio Gateway server"
		if c.flavour() != Sidecar {
			what = "Gateway API Gateway (class istio) listener on port 80"
		}
		problems = append(problems, fmt.Sprintf("no %s for host %s", what, c.Host))
	}
	if c.flavour() == Ambient && !waypoint {
		problems = append(problems, "no waypoint (Gateway of class istio-waypoint) in "+c.Namespace)
	}
	if c.flavour() == Ambient && !ambientNS {
		problems = append(problems, "namespace "+c.Namespace+" is not labelled istio.io/dataplane-mode=ambient (or keeps istio-injection)")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

func checkDeployment(o Object, bad func(Object, string, ...any)) {
	labels, _ := dig(o.Doc, "spec", "template", "metadata", "labels").(map[string]any)
	version, _ := labels["version"].(string)
	app, _ := labels["app"].(string)
	if version == "" || !slices.Contains(Workloads, app) {
		bad(o, "pod labels app=%q version=%q", app, version)
	}
	if want := app + "-" + version; o.Name != want {
		bad(o, "name, want %s from its labels", want)
	}
	containers := list(dig(o.Doc, "spec", "template", "spec", "containers"))
	if len(containers) == 0 {
		bad(o, "no containers")
	}
	for _, ct := range containers {
		m, _ := ct.(map[string]any)
		if img, _ := m["image"].(string); img != "meshdemo/"+app+":dev" {
			bad(o, "image %q, want meshdemo/%s:dev (loaded with kind load)", img, app)
		}
		if p, _ := m["imagePullPolicy"].(string); p != "Never" {
			bad(o, "imagePullPolicy %q, want Never", p)
		}
	}
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}
