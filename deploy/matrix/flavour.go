package matrix

import (
	"fmt"
	"strings"
)

// Flavour is one of the three ways meshdemo uses Istio. Every scenario exists in each, laid out
// alike: istio/<flavour>/base, istio/<flavour>/components/<scenario> and the flavour's Istio
// install settings, istio/<flavour>/install.yaml. What differs between flavours is answered by
// the methods below, in this one place.
type Flavour string

const (
	// Sidecar: a sidecar in every pod, routes as VirtualService and DestinationRule.
	Sidecar Flavour = "sidecar"
	// GatewayAPI: sidecars, routes in the Kubernetes Gateway API only.
	GatewayAPI Flavour = "gateway-api"
	// Ambient: no sidecars; ztunnel and the namespace's waypoint.
	Ambient Flavour = "ambient"
)

// Flavours lists the flavours, sidecar (the default) first.
func Flavours() []Flavour {
	out := make([]Flavour, len(flavours))
	for i, f := range flavours {
		out[i] = f.flavour
	}
	return out
}

// ParseFlavour accepts a flavour's name; the empty string is the sidecar flavour.
func ParseFlavour(s string) (Flavour, error) {
	if s == "" {
		return Sidecar, nil
	}
	for _, f := range flavours {
		if string(f.flavour) == s {
			return f.flavour, nil
		}
	}
	return "", fmt.Errorf("unknown flavour %q, want one of %s", s, strings.Join(flavourNames(), ", "))
}

func flavourNames() []string {
	out := make([]string, len(flavours))
	for i, f := range flavours {
		out[i] = string(f.flavour)
	}
	return out
}

func (f Flavour) String() string { return string(f) }

// Purpose is the flavour's one-line description.
func (f Flavour) Purpose() string {
	for _, i := range flavours {
		if i.flavour == f {
			return i.purpose
		}
	}
	return ""
}

// Dir is the flavour's Kustomize tree: istio/<flavour>.
func (f Flavour) Dir() string { return "istio/" + string(f) }

// Base is the flavour's Istio base kustomization (gateway, base routes, mesh policies).
func (f Flavour) Base() string { return f.Dir() + "/base" }

// ComponentsDir holds the flavour's scenario components, one folder per scenario.
func (f Flavour) ComponentsDir() string { return f.Dir() + "/components" }

// Component is the flavour's Kustomize component of a scenario.
func (f Flavour) Component(scenario string) string { return f.ComponentsDir() + "/" + scenario }

// Leading are the components the flavour applies before all others. Ambient moves the
// namespace from sidecar injection to ambient mode, and only a component can patch the
// Namespace that deploy/base defines.
func (f Flavour) Leading() []string {
	if f == Ambient {
		return []string{f.Dir() + "/dataplane"}
	}
	return nil
}

// InstallFiles are the IstioOperator files of the flavour's Istio install, in the order
// istioctl gets them (it merges -f files in order): the sidecar flavour's settings, which every
// flavour shares, then the flavour's own overlay.
func (f Flavour) InstallFiles() []string {
	files := []string{Sidecar.Dir() + "/install.yaml"}
	if f != Sidecar {
		files = append(files, f.Dir()+"/install.yaml")
	}
	return files
}

// Sidecars tells whether the flavour injects a sidecar into every pod (ambient does not).
func (f Flavour) Sidecars() bool { return f != Ambient }

// GatewayAPIRoutes tells whether the flavour routes with the Kubernetes Gateway API alone: its
// render then holds no VirtualService, DestinationRule subset routing or Istio Gateway.
func (f Flavour) GatewayAPIRoutes() bool { return f != Sidecar }

// IngressNamespace is where the flavour's ingress gateway runs: Istio's classic
// istio-ingressgateway in istio-system for sidecar, a Gateway API Gateway in istio-ingress for
// the others.
func (f Flavour) IngressNamespace() string {
	if f.GatewayAPIRoutes() {
		return "istio-ingress"
	}
	return "istio-system"
}

// Profile is the name of a scenario or preset in the flavour: the skaffold profile and the
// deploy/scenarios directory. Sidecar keeps the bare name; the others are prefixed
// (gateway-api-weighted-split, ambient-default).
func (f Flavour) Profile(name string) string {
	if f == Sidecar {
		return name
	}
	return string(f) + "-" + name
}

// ParseProfile splits a profile (Flavour.Profile) into its flavour and scenario or preset.
func ParseProfile(profile string) (Flavour, string, error) {
	f, name := Sidecar, profile
	for _, g := range Flavours() {
		if n, ok := strings.CutPrefix(profile, string(g)+"-"); ok && g != Sidecar {
			f, name = g, n
		}
	}
	if !IsPreset(name) && !IsScenario(name) {
		return "", "", fmt.Errorf("unknown profile %q", profile)
	}
	return f, name, nil
}

// Profiles lists every profile: for each flavour its presets, then its scenarios.
func Profiles() []string {
	var out []string
	for _, f := range Flavours() {
		for _, n := range append(PresetNames(), ScenarioNames()...) {
			out = append(out, f.Profile(n))
		}
	}
	return out
}

// ScenarioDir is where the generated kustomization of a profile lives.
func ScenarioDir(profile string) string { return "deploy/scenarios/" + profile }
