package cli

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// docs/install.md tells users with their own cluster how to install Istio for each flavour: one
// `istioctl install` line per flavour in its prerequisites table, and one for traces. These
// tests take those lines from the page as written and give their flags to the pinned istioctl's
// `manifest generate` (what `istioctl install` applies), then check that the result holds what
// the bundles need on that flavour.

const installDoc = "docs/install.md"

// rowCommand matches a row of the prerequisites table: | flavour | bundles | `istioctl install …` (…) | …
var rowCommand = regexp.MustCompile("^\\| (sidecar|gateway-api|ambient) \\|[^|]*\\| `istioctl install ([^`]+)`")

// docInstallCommands returns the flags of each flavour's `istioctl install` line, and those of
// the traces example (the first `istioctl install` in a sh block, continuation lines joined).
func docInstallCommands(t testing.TB) (map[matrix.Flavour][]string, []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), installDoc))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[matrix.Flavour][]string{}
	var traces []string
	lines := strings.Split(string(data), "\n")
	inSh := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := rowCommand.FindStringSubmatch(line); m != nil {
			f, err := matrix.ParseFlavour(m[1])
			if err != nil {
				t.Fatal(err)
			}
			rows[f] = shellFields(m[2])
		}
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh = true
		case strings.HasPrefix(line, "```"):
			inSh = false
		case inSh && traces == nil && strings.HasPrefix(line, "istioctl install "):
			cmd := strings.TrimPrefix(line, "istioctl install ")
			for strings.HasSuffix(strings.TrimSpace(cmd), "\\") && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(strings.TrimSpace(cmd), "\\") + " " + strings.TrimSpace(lines[i])
			}
			traces = shellFields(cmd)
		}
	}
	for _, f := range matrix.Flavours() {
		if rows[f] == nil {
			t.Fatalf("%s: no `istioctl install` line for the %s flavour in its prerequisites table", installDoc, f)
		}
	}
	if traces == nil {
		t.Fatalf("%s: no `istioctl install` example in a sh block (the traces provider)", installDoc)
	}
	return rows, traces
}

// shellFields splits a command line the way the shell does for these lines: on spaces, single
// quotes removed (none of the values holds a space).
func shellFields(s string) []string {
	fields := strings.Fields(s)
	for i, f := range fields {
		fields[i] = strings.ReplaceAll(f, "'", "")
	}
	return fields
}

// generateWith runs `istioctl manifest generate` with a documented line's flags.
func generateWith(t testing.TB, flags []string) flavourInstall {
	t.Helper()
	r := run(t, repoRoot(t), nil, tool(t, "ISTIOCTL", "istioctl"),
		append(append([]string{"manifest", "generate"}, flags...), "--set", "tag="+istioVersion(t))...)
	if r.err != nil {
		t.Fatalf("istioctl manifest generate %s: %v\n%s", strings.Join(flags, " "), r.err, r.stderr)
	}
	fi := parseFlavourInstall(t, []byte(r.stdout))
	fi.gatewaySeccomp = gatewaySeccomp(t, []byte(r.stdout))
	return fi
}

// gatewaySeccomp is values.gateways.seccompProfile.type in the injector's values: what istiod
// writes into the gateways and waypoints it deploys.
func gatewaySeccomp(t testing.TB, manifest []byte) string {
	t.Helper()
	var typ string
	eachDoc(manifest, func(kind, name string, doc []byte) {
		if kind != "ConfigMap" || name != "istio-sidecar-injector" {
			return
		}
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal(doc, &cm); err != nil {
			t.Fatal(err)
		}
		var values struct {
			Gateways struct {
				SeccompProfile struct {
					Type string `json:"type"`
				} `json:"seccompProfile"`
			} `json:"gateways"`
		}
		if err := json.Unmarshal([]byte(cm.Data["values"]), &values); err != nil {
			t.Fatalf("istio-sidecar-injector values: %v", err)
		}
		typ = values.Gateways.SeccompProfile.Type
	})
	return typ
}

// checkDocInstall is what a cluster needs for a flavour's bundles: the CNI node agent (the
// namespace meshdemo enforces Pod Security restricted, which refuses istio-init); sidecar: the
// classic istio-ingressgateway the bundles' Istio Gateway selects; gateway-api: no classic
// gateway; ambient: ztunnel, ambient in istiod, and a seccomp profile for the waypoint istiod
// deploys into meshdemo.
func checkDocInstall(f matrix.Flavour, fi flavourInstall) []string {
	var bad []string
	if fi.daemonSets["istio-cni-node"] == nil {
		bad = append(bad, "no istio-cni-node DaemonSet: the injector would add istio-init, which Pod Security restricted refuses")
	}
	_, classic := fi.deployments["istio-ingressgateway"]
	switch f {
	case matrix.Sidecar:
		if !classic {
			bad = append(bad, "no istio-ingressgateway: the sidecar bundles' Istio Gateway selects it")
		}
	case matrix.GatewayAPI:
		if classic {
			bad = append(bad, "a classic istio-ingressgateway: the gateway-api bundles bring their own Gateway")
		}
	case matrix.Ambient:
		if fi.daemonSets["ztunnel"] == nil || fi.istiodEnv["PILOT_ENABLE_AMBIENT"] != "true" {
			bad = append(bad, "no ambient data plane (ztunnel, PILOT_ENABLE_AMBIENT)")
		}
		if fi.gatewaySeccomp != "RuntimeDefault" {
			bad = append(bad, fmt.Sprintf("values.gateways.seccompProfile.type %q: the waypoint in meshdemo needs RuntimeDefault under Pod Security restricted", fi.gatewaySeccomp))
		}
	}
	return bad
}

func TestInstallDocIstioCommands(t *testing.T) {
	t.Parallel()
	rows, traces := docInstallCommands(t)
	for _, f := range matrix.Flavours() {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			fi := generateWith(t, rows[f])
			for _, p := range checkDocInstall(f, fi) {
				t.Errorf("%s, %s flavour: istioctl install %s: %s", installDoc, f, strings.Join(rows[f], " "), p)
			}
		})
	}
	t.Run("traces", func(t *testing.T) {
		t.Parallel()
		fi := generateWith(t, traces)
		found := false
		for _, p := range fi.mesh.GetExtensionProviders() {
			if o := p.GetOpentelemetry(); p.GetName() == "jaeger-otlp" && o != nil &&
				o.GetService() == "jaeger-collector.istio-system.svc.cluster.local" && o.GetPort() == 4317 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: istioctl install %s: no extension provider jaeger-otlp (OTLP to jaeger-collector.istio-system:4317), which the bundles' Telemetry names", installDoc, strings.Join(traces, " "))
		}
		for _, p := range checkDocInstall(matrix.Sidecar, fi) {
			t.Errorf("%s: the traces example is a sidecar install: %s", installDoc, p)
		}
	})
}

// The checks see what a documented line would get wrong: Istio's bare profiles, as a user who
// skipped the extra flags would install them, fail them.
func TestInstallDocChecksRejectBareProfiles(t *testing.T) {
	t.Parallel()
	for f, profile := range map[matrix.Flavour]string{matrix.Sidecar: "default", matrix.Ambient: "ambient"} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			fi := generateWith(t, []string{"--set", "profile=" + profile})
			if bad := checkDocInstall(f, fi); len(bad) == 0 {
				t.Errorf("profile=%s alone passed the %s flavour's checks", profile, f)
			} else {
				t.Logf("profile=%s alone: %v", profile, bad)
			}
		})
	}
}
