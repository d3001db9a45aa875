package matrix

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Composition is one kustomization: what it builds on and which components it applies, as
// paths relative to the repository root.
type Composition struct {
	Resources  []string
	Components []string
}

// canaryComponents are the components that make v1 and v2 run side by side, in order: the
// canary, then the PostgreSQL that v1 and v2 of user-service share (after the canary, so its
// DATABASE_URL patch reaches user-service-v2).
var canaryComponents = []string{"deploy/components/canary", "deploy/components/postgres"}

// CanaryComponents lists the canary's components in the order they apply.
func CanaryComponents() []string { return clone(canaryComponents) }

// TracingComponent points every workload's span exporter at the Jaeger collector of Istio's
// addons, on every cluster: ClusterIn applies it.
const TracingComponent = "deploy/components/tracing"

// KindComponent is what only kind needs (images meshdemo/<workload>:dev, imagePullPolicy Never,
// the ingress on the node port build/kind/cluster.yaml publishes): the whole difference between
// ScenarioIn and ReleaseIn.
const KindComponent = "deploy/components/kind"

// ReleaseComponent pins every meshdemo image to a release's digest (`images:` with newName and
// digest). It is generated, never committed: the bundle render (verify/cmd/render -release)
// writes ReleaseComponentFile of the release's images.json into its in-memory copy of the
// repository at this path, so a bundle is the Kustomize sources plus the release's digests and
// cannot drift from them. The folder on disk holds only a README saying so.
const ReleaseComponent = "deploy/components/release"

// ScenarioIn is the composition deployed for a scenario or preset on kind
// (deploy/scenarios/<profile>): ClusterIn, then the kind component last, so its image tag and
// pull policy reach the v2 Deployments too.
func ScenarioIn(f Flavour, name string) Composition {
	c := ClusterIn(f, name)
	c.Components = append(c.Components, KindComponent)
	return c
}

// ReleaseIn is the composition of a release bundle (BundleName): ClusterIn, then the generated
// release component, which names every image by its registry and digest. It is ScenarioIn with
// the release component in place of the kind component, so that a bundle differs from the kind
// render in exactly what only kind needs.
func ReleaseIn(f Flavour, name string) Composition {
	c := ClusterIn(f, name)
	c.Components = append(c.Components, ReleaseComponent)
	return c
}

// ClusterIn is a scenario or preset as any cluster gets it (images by their published names,
// Kubernetes' default pull policy, Istio's default ingress Service), the form verify/pilot
// simulates: the workloads and the flavour's Istio base, the flavour's leading components, the
// canary with its PostgreSQL, the scenario's component, then tracing (after the canary and the
// scenario, so it reaches every Deployment they add). "default" is v1 only (user-service in
// memory); "canary" adds v2.
func ClusterIn(f Flavour, name string) Composition {
	c := Composition{Resources: []string{"deploy/base", f.Base()}}
	c.Components = append(c.Components, f.Leading()...)
	if name != "default" {
		c.Components = append(c.Components, canaryComponents...)
	}
	if IsScenario(name) {
		c.Components = append(c.Components, f.Component(name))
	}
	c.Components = append(c.Components, TracingComponent)
	return c
}

// AloneIn is a scenario's component applied without the canary, on kind: the workloads v1 and
// the flavour's Istio base with tracing and the kind component, then the flavour's leading
// components and the scenario's component. A scenario must stay valid that way too. Tracing and
// kind come first, as when this was deploy/overlays/kind plus the flavour's base (the render is
// unchanged); they are listed here rather than reached through that overlay because the kind
// component's node-port patch must see the flavour's ingress ConfigMap, which the overlay, built
// on its own, never holds.
func AloneIn(f Flavour, name string) Composition {
	return Composition{
		Resources:  []string{"deploy/base", f.Base()},
		Components: append(append([]string{TracingComponent, KindComponent}, f.Leading()...), f.Component(name)),
	}
}

// BundleName is the file name of a profile's release bundle (Flavour.Profile): the one YAML file
// a user applies, in the release folder and on the GitHub release.
func BundleName(profile string) string { return "meshdemo-" + profile + ".yaml" }

// Kustomization is the kustomization.yaml text of c as seen from dir (relative to the root).
func (c Composition) Kustomization(dir, comment string) string {
	var b strings.Builder
	if comment != "" {
		fmt.Fprintf(&b, "# %s\n", comment)
	}
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, r := range c.Resources {
		fmt.Fprintf(&b, "  - %s\n", rel(dir, r))
	}
	if len(c.Components) > 0 {
		b.WriteString("components:\n")
		for _, r := range c.Components {
			fmt.Fprintf(&b, "  - %s\n", rel(dir, r))
		}
	}
	return b.String()
}

// ScenarioFile is the generated deploy/scenarios/<profile>/kustomization.yaml.
func ScenarioFile(f Flavour, name string) string {
	return ScenarioIn(f, name).Kustomization(ScenarioDir(f.Profile(name)),
		fmt.Sprintf("Generated by `make scenarios` from deploy/matrix; verify checks it is current. Scenario %q, flavour %s, on kind.", name, f))
}

func rel(from, to string) string {
	r, err := filepath.Rel(from, to)
	if err != nil {
		panic(err) // both are clean relative paths under the repository root
	}
	return filepath.ToSlash(r)
}
