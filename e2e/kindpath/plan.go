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
// test name is Test + the scenario in CamelCase, see e2e/suite/kind_test.go).
var Scenarios = []string{
	"header-routing", "weighted-split", "route-timeout", "fault-abort", "fault-delay",
	"retries", "outlier-detection", "mirroring", "authz", "hardening",
}

// Plan is everything the kind path would run, in order: the flow with, in the place of the
// test step, each scenario's apply and restore. It renders and validates every manifest on
// the way, so an error means the path is not well formed.
func Plan(ctx context.Context, c Config) ([]Step, error) {
	flow := c.Flow()
	var plan []Step
	for _, s := range flow {
		if err := c.check(ctx, s); err != nil {
			return nil, err
		}
		if s.Name != "test" {
			plan = append(plan, s)
			continue
		}
		plan = append(plan, s)
		for _, name := range Scenarios {
			apply := c.Apply(name)
			restore, err := c.Restore(name)
			if err != nil {
				return nil, err
			}
			for _, st := range append(apply, restore...) {
				if err := c.check(ctx, st); err != nil {
					return nil, err
				}
				st.Name = "suite: " + st.Name
				plan = append(plan, st)
			}
		}
	}
	return plan, nil
}

// check validates one step: the files and folders it names exist, and a kustomization it
// applies renders into valid objects.
func (c Config) check(ctx context.Context, s Step) error {
	if len(s.Args) == 0 {
		return fmt.Errorf("step %q has no command", s.Name)
	}
	for i, a := range s.Args {
		if i > 0 && (s.Args[i-1] == "-f" || s.Args[i-1] == "--config" || s.Args[i-1] == "-k") {
			if _, err := os.Stat(filepath.Join(c.Root, s.Dir, a)); err != nil {
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

// Validate checks what the kind flow relies on in a rendered scenario: every object in the
// namespace, Istio objects at v1, every Deployment on a loaded :dev image that is never
// pulled and labelled with its version, the gateway answering for the documented Host, and
// the four Services present.
func (c Config) Validate(objs []Object) error {
	var problems []string
	bad := func(o Object, f string, a ...any) {
		problems = append(problems, fmt.Sprintf("%s %s: %s", o.Kind, o.Name, fmt.Sprintf(f, a...)))
	}
	services := map[string]bool{}
	gatewayHost := false
	for _, o := range objs {
		switch {
		case o.Kind == "Namespace":
			if o.Name != c.Namespace {
				bad(o, "unexpected namespace")
			}
			continue
		case o.Namespace != c.Namespace:
			bad(o, "namespace %q, want %q", o.Namespace, c.Namespace)
		}
		if strings.Contains(o.APIVersion, "istio.io/") && !istioAPIs[o.APIVersion] {
			bad(o, "API version %s, want v1", o.APIVersion)
		}
		switch o.Kind {
		case "Service":
			services[o.Name] = true
		case "Deployment":
			checkDeployment(o, bad)
		case "Gateway":
			for _, srv := range list(dig(o.Doc, "spec", "servers")) {
				for _, h := range list(dig(srv, "hosts")) {
					if h == c.Host || strings.HasSuffix(fmt.Sprint(h), "/"+c.Host) {
						gatewayHost = true
					}
				}
			}
		}
	}
	for _, w := range Workloads {
		if !services[w] {
			problems = append(problems, "no Service "+w)
		}
	}
	if !gatewayHost {
		problems = append(problems, "no Gateway server for host "+c.Host)
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
