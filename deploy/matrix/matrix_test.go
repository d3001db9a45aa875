package matrix

import (
	"regexp"
	"slices"
	"testing"
)

// dnsLabel is what a name must be: it is a folder, a skaffold profile, part of Kubernetes
// object names and a Go subtest name.
var dnsLabel = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)

func TestNamesAreUniqueLabels(t *testing.T) {
	var all []string
	all = append(all, ScenarioNames()...)
	all = append(all, PresetNames()...)
	all = append(all, WorkloadNames()...)
	for _, f := range Flavours() {
		all = append(all, f.String())
	}
	seen := map[string]bool{}
	for _, n := range all {
		if !dnsLabel.MatchString(n) {
			t.Errorf("%q is not a DNS label", n)
		}
		if seen[n] {
			t.Errorf("%q is declared twice", n)
		}
		seen[n] = true
	}
	for _, s := range append(Scenarios(), Presets()...) {
		if s.Purpose == "" {
			t.Errorf("%s has no purpose", s.Name)
		}
	}
}

func TestProfilesParseBack(t *testing.T) {
	profiles := Profiles()
	if want := len(Flavours()) * (len(scenarios) + len(presets)); len(profiles) != want {
		t.Fatalf("%d profiles, want %d", len(profiles), want)
	}
	for _, f := range Flavours() {
		for _, n := range append(PresetNames(), ScenarioNames()...) {
			g, m, err := ParseProfile(f.Profile(n))
			if err != nil || g != f || m != n {
				t.Errorf("ParseProfile(%q) = %s, %s, %v; want %s, %s", f.Profile(n), g, m, err, f, n)
			}
		}
	}
	for _, bad := range []string{"", "nope", "gateway-api-nope", "ambient-", "sidecar-retries"} {
		if _, _, err := ParseProfile(bad); err == nil {
			t.Errorf("ParseProfile(%q) accepted", bad)
		}
	}
}

func TestParseFlavour(t *testing.T) {
	for in, want := range map[string]Flavour{"": Sidecar, "sidecar": Sidecar, "gateway-api": GatewayAPI, "ambient": Ambient} {
		if got, err := ParseFlavour(in); err != nil || got != want {
			t.Errorf("ParseFlavour(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseFlavour("istio"); err == nil {
		t.Error(`ParseFlavour("istio") accepted`)
	}
}

func TestCompositions(t *testing.T) {
	got := ScenarioIn(Ambient, "retries")
	want := Composition{
		Resources: []string{"deploy/base", "istio/ambient/base"},
		Components: []string{"istio/ambient/dataplane", "deploy/components/canary", "deploy/components/postgres",
			"istio/ambient/components/retries", "deploy/components/tracing", "deploy/components/kind"},
	}
	if !slices.Equal(got.Resources, want.Resources) || !slices.Equal(got.Components, want.Components) {
		t.Errorf("ScenarioIn(ambient, retries) = %+v\nwant %+v", got, want)
	}
	if c := ScenarioIn(Sidecar, "default"); !slices.Equal(c.Components, []string{"deploy/components/tracing", "deploy/components/kind"}) {
		t.Errorf("default applies %v, want only tracing and the kind component", c.Components)
	}
	// A bundle is the kind render with the release component in place of the kind component,
	// and nothing else: the whole difference between the two is in those two components.
	for _, f := range Flavours() {
		for _, n := range append(PresetNames(), ScenarioNames()...) {
			k, r := ScenarioIn(f, n), ReleaseIn(f, n)
			if !slices.Equal(k.Resources, r.Resources) || !slices.Equal(k.Components[:len(k.Components)-1], r.Components[:len(r.Components)-1]) ||
				k.Components[len(k.Components)-1] != KindComponent || r.Components[len(r.Components)-1] != ReleaseComponent {
				t.Errorf("%s: kind %+v, release %+v", f.Profile(n), k, r)
			}
		}
	}
	if got, want := AloneIn(Ambient, "authz"), (Composition{
		Resources: []string{"deploy/base", "istio/ambient/base"},
		Components: []string{"deploy/components/tracing", "deploy/components/kind", "istio/ambient/dataplane",
			"istio/ambient/components/authz"},
	}); !slices.Equal(got.Resources, want.Resources) || !slices.Equal(got.Components, want.Components) {
		t.Errorf("AloneIn(ambient, authz) = %+v\nwant %+v", got, want)
	}
	if c := ScenarioIn(GatewayAPI, "canary"); slices.Contains(c.Components, "istio/gateway-api/components/canary") {
		t.Errorf("canary is a preset, not a component: %v", c.Components)
	}
	const wantFile = `# c
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
  - ../../../istio/sidecar/base
components:
  - ../../components/canary
  - ../../components/postgres
  - ../../../istio/sidecar/components/mirroring
  - ../../components/tracing
  - ../../components/kind
`
	if got := ScenarioIn(Sidecar, "mirroring").Kustomization("deploy/scenarios/mirroring", "c"); got != wantFile {
		t.Errorf("kustomization:\n%s\nwant:\n%s", got, wantFile)
	}
}

func TestInstallFiles(t *testing.T) {
	if got := Sidecar.InstallFiles(); !slices.Equal(got, []string{"istio/sidecar/install.yaml"}) {
		t.Errorf("sidecar installs %v", got)
	}
	if got := Ambient.InstallFiles(); !slices.Equal(got, []string{"istio/sidecar/install.yaml", "istio/ambient/install.yaml"}) {
		t.Errorf("ambient installs %v", got)
	}
}
