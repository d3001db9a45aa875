package cli

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/meshdemo/meshdemo/verify/manifests"
	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// install is what `istioctl manifest generate` makes of an IstioOperator file, reduced to what
// tracing depends on: the mesh config istiod reads and istiod's environment.
type install struct {
	mesh      *meshconfig.MeshConfig
	istiodEnv map[string]string
}

func parseInstall(t testing.TB, generated []byte) install {
	t.Helper()
	in := install{istiodEnv: map[string]string{}}
	eachDoc(generated, func(kind, name string, doc []byte) {
		switch {
		case kind == "ConfigMap" && name == "istio":
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict(doc, &cm); err != nil {
				t.Fatal(err)
			}
			js, err := yaml.YAMLToJSON([]byte(cm.Data["mesh"]))
			if err != nil {
				t.Fatal(err)
			}
			in.mesh = &meshconfig.MeshConfig{}
			if err := protojson.Unmarshal(js, in.mesh); err != nil {
				t.Fatalf("istio ConfigMap's mesh does not decode strictly into MeshConfig: %v", err)
			}
		case kind == "Deployment" && name == "istiod":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict(doc, &d); err != nil {
				t.Fatal(err)
			}
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				in.istiodEnv[e.Name] = e.Value
			}
		}
	})
	if in.mesh == nil || len(in.istiodEnv) == 0 {
		t.Fatal("generated install has no istio ConfigMap or no istiod Deployment")
	}
	return in
}

var (
	addonsOnce    sync.Once
	addonServices []corev1.Service
	addonsErr     error
)

// jaegerAddon is the Services of samples/addons/jaeger.yaml in the Istio module that
// build/tools pins (istioctl's source, release-1.31 branch), read from the Go module cache.
// `make addons` applies the same file of the release named in build/istio-version.
func jaegerAddon(t testing.TB) []corev1.Service {
	t.Helper()
	addonsOnce.Do(func() {
		toolsDir := filepath.Join(repoRoot(t), "build", "tools")
		env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		cmd := exec.Command("go", "mod", "download", "-json", "istio.io/istio")
		cmd.Dir, cmd.Env = toolsDir, env
		out, err := cmd.Output()
		if err != nil {
			addonsErr = fmt.Errorf("go mod download istio.io/istio: %w", err)
			return
		}
		var m struct{ Dir string }
		if err := json.Unmarshal(out, &m); err != nil {
			addonsErr = err
			return
		}
		version, err := os.ReadFile(filepath.Join(m.Dir, "VERSION"))
		if err != nil {
			addonsErr = err
			return
		}
		if !strings.HasPrefix(istioVersion(t), strings.TrimSpace(string(version))+".") {
			addonsErr = fmt.Errorf("pinned Istio module is %s, build/istio-version %s", version, istioVersion(t))
			return
		}
		data, err := os.ReadFile(filepath.Join(m.Dir, "samples", "addons", "jaeger.yaml"))
		if err != nil {
			addonsErr = err
			return
		}
		r := utilyaml.NewYAMLReader(bufioReader(data))
		for {
			doc, err := r.Read()
			if err != nil {
				break
			}
			var head struct {
				Kind string `json:"kind"`
			}
			if yaml.Unmarshal(doc, &head) != nil || head.Kind != "Service" {
				continue
			}
			var s corev1.Service
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				addonsErr = err
				return
			}
			addonServices = append(addonServices, s)
		}
	})
	if addonsErr != nil {
		t.Fatal(addonsErr)
	}
	return addonServices
}

// servicePort finds the addon Service port a cluster-local host:port names (name.namespace,
// name.namespace.svc or name.namespace.svc.cluster.local).
func servicePort(addons []corev1.Service, host string, port int) (*corev1.ServicePort, error) {
	parts := strings.Split(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
	if len(parts) == 3 && parts[2] == "svc" {
		parts = parts[:2]
	}
	if len(parts) != 2 {
		return nil, fmt.Errorf("host %q is not a cluster-local Service name (name.namespace.svc.cluster.local)", host)
	}
	for _, s := range addons {
		if s.Name != parts[0] || s.Namespace != parts[1] {
			continue
		}
		for i, p := range s.Spec.Ports {
			if int(p.Port) == port {
				return &s.Spec.Ports[i], nil
			}
		}
		return nil, fmt.Errorf("Service %s/%s of the Jaeger addon has no port %d", parts[1], parts[0], port)
	}
	return nil, fmt.Errorf("no Service %s/%s in the Jaeger addon", parts[1], parts[0])
}

// protocolOf is the protocol Istio gives a Service port: appProtocol, else the name's prefix.
func protocolOf(p *corev1.ServicePort) string {
	if p.AppProtocol != nil {
		return *p.AppProtocol
	}
	name, _, _ := strings.Cut(p.Name, "-")
	return name
}

// checkTracing proves the wiring of one request into one trace, offline: the mesh has an
// OpenTelemetry provider that is the default (so the ingress gateway traces) and samples 100 %,
// it sends OTLP/gRPC to a gRPC port of a Service the Jaeger addon creates, a Telemetry that
// reaches meshdemo's proxies names it at 100 %, and every workload exports OTLP/HTTP to an HTTP
// port of an addon Service, past its sidecar where it has one.
//
// Which Telemetry reaches the proxies depends on the flavour. With sidecars (sidecar,
// gateway-api) it is namespace-wide: no selector, no targetRefs. In ambient the only Envoy in
// meshdemo is the waypoint the namespace uses (label istio.io/use-waypoint): the Telemetry is
// namespace-wide or names that waypoint in its targetRefs (istiod applies both to a waypoint,
// pilot/pkg/model/telemetry.go); ztunnel makes no spans, so the apps' own export needs no
// exclusion from capture there.
func checkTracing(in install, addons []corev1.Service, objs []manifests.Object, f matrix.Flavour) []error {
	var errs []error
	providers := map[string]*meshconfig.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider{}
	for _, p := range in.mesh.GetExtensionProviders() {
		if otel := p.GetOpentelemetry(); otel != nil {
			providers[p.Name] = otel
		}
	}
	for name, otel := range providers {
		port, err := servicePort(addons, otel.Service, int(otel.Port))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("tracing provider %s: %w", name, err))
		case otel.GetHttp() == nil && protocolOf(port) != "grpc":
			errs = append(errs, fmt.Errorf("tracing provider %s exports OTLP/gRPC to port %d (%s), which is not a gRPC port", name, otel.Port, port.Name))
		case otel.GetHttp() != nil && protocolOf(port) != "http":
			errs = append(errs, fmt.Errorf("tracing provider %s exports OTLP/HTTP to port %d (%s), which is not an HTTP port", name, otel.Port, port.Name))
		}
	}
	defaults := in.mesh.GetDefaultProviders().GetTracing()
	if len(defaults) == 0 || providers[defaults[0]] == nil {
		errs = append(errs, fmt.Errorf("mesh default tracing providers %v: the first must be an OpenTelemetry provider of the mesh, or the ingress gateway does not trace", defaults))
	}
	if s, err := strconv.ParseFloat(in.istiodEnv["PILOT_TRACE_SAMPLING"], 64); err != nil || s != 100 {
		errs = append(errs, fmt.Errorf("istiod PILOT_TRACE_SAMPLING %q, want 100: the gateway decides sampling for the whole trace", in.istiodEnv["PILOT_TRACE_SAMPLING"]))
	}

	waypoint, err := meshWaypoint(objs)
	if f == matrix.Ambient && err != nil {
		errs = append(errs, err)
	}
	telemetries, workloads := 0, 0
	for _, o := range objs {
		switch typed := o.Typed.(type) {
		case *telemetry.Telemetry:
			if o.Meta.Namespace != "meshdemo" || typed.Selector != nil || typed.TargetRef != nil {
				continue
			}
			if len(typed.TargetRefs) != 0 && (f != matrix.Ambient || waypoint == "" || !slices.ContainsFunc(typed.TargetRefs, func(r *typev1beta1.PolicyTargetReference) bool {
				return r.GetGroup() == "gateway.networking.k8s.io" && r.GetKind() == "Gateway" && r.GetName() == waypoint
			})) {
				continue
			}
			for _, tr := range typed.Tracing {
				telemetries++
				for _, p := range tr.Providers {
					if providers[p.Name] == nil {
						errs = append(errs, fmt.Errorf("%s: tracing provider %q is not an OpenTelemetry provider of the mesh (have %v)", o.ID(), p.Name, keys(providers)))
					}
				}
				if tr.RandomSamplingPercentage.GetValue() != 100 {
					errs = append(errs, fmt.Errorf("%s: randomSamplingPercentage %v, want 100", o.ID(), tr.RandomSamplingPercentage.GetValue()))
				}
			}
		case *appsv1.Deployment:
			workloads++
			errs = append(errs, checkExporter(o, typed, addons, f != matrix.Ambient)...)
		}
	}
	if telemetries == 0 && f == matrix.Ambient {
		errs = append(errs, fmt.Errorf("no Telemetry in meshdemo that reaches its waypoint %q (namespace-wide, or naming it in targetRefs) configures tracing", waypoint))
	} else if telemetries == 0 {
		errs = append(errs, fmt.Errorf("no namespace-wide Telemetry in meshdemo configures tracing"))
	}
	if workloads == 0 {
		errs = append(errs, fmt.Errorf("no Deployments rendered"))
	}
	return errs
}

// meshWaypoint is the waypoint meshdemo's Services use: the Namespace's istio.io/use-waypoint
// label, naming a rendered Gateway of class istio-waypoint.
func meshWaypoint(objs []manifests.Object) (string, error) {
	var name string
	for _, o := range objs {
		if ns, ok := o.Typed.(*corev1.Namespace); ok && ns.Name == "meshdemo" {
			name = ns.Labels["istio.io/use-waypoint"]
		}
	}
	if name == "" {
		return "", fmt.Errorf("Namespace meshdemo names no waypoint (label istio.io/use-waypoint)")
	}
	for _, o := range objs {
		if gw, ok := o.Typed.(*gatewayv1.Gateway); ok && gw.Namespace == "meshdemo" && gw.Name == name && gw.Spec.GatewayClassName == "istio-waypoint" {
			return name, nil
		}
	}
	return "", fmt.Errorf("Namespace meshdemo uses waypoint %q, which is not a rendered Gateway of class istio-waypoint", name)
}

// checkExporter: the workload exports OTLP/HTTP to an HTTP port of an addon Service, and, if it
// has a sidecar, that port is excluded from the sidecar's capture.
func checkExporter(o manifests.Object, d *appsv1.Deployment, addons []corev1.Service, sidecar bool) []error {
	var endpoint string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			endpoint = e.Value
		}
	}
	if endpoint == "" {
		return []error{fmt.Errorf("%s: no OTEL_EXPORTER_OTLP_ENDPOINT: the app's spans are not exported", o.ID())}
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return []error{fmt.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q: want http://<service host>:<port>", o.ID(), endpoint)}
	}
	port, _ := strconv.Atoi(u.Port())
	sp, err := servicePort(addons, u.Hostname(), port)
	if err != nil {
		return []error{fmt.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %s: %w", o.ID(), endpoint, err)}
	}
	if protocolOf(sp) != "http" {
		return []error{fmt.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %s: port %s is not an HTTP port (the exporter speaks OTLP/HTTP)", o.ID(), endpoint, sp.Name)}
	}
	excluded := strings.Split(d.Spec.Template.Annotations["traffic.sidecar.istio.io/excludeOutboundPorts"], ",")
	if sidecar && !slices.Contains(excluded, u.Port()) {
		return []error{fmt.Errorf("%s: port %s is not in traffic.sidecar.istio.io/excludeOutboundPorts: every span export would be a trace of its own", o.ID(), u.Port())}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var (
	kindInstallOnce sync.Once
	kindInstall     install
)

func generatedKindInstall(t testing.TB) install {
	t.Helper()
	kindInstallOnce.Do(func() {
		kindInstall = parseInstall(t, generatedKindManifest(t))
	})
	if kindInstall.mesh == nil {
		t.Fatal("install not generated")
	}
	return kindInstall
}

func decodeRender(t testing.TB, stream []byte) []manifests.Object {
	t.Helper()
	objs, err := manifests.Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// Every profile of every flavour is wired for tracing against the install and the Jaeger addon,
// on kind and in its release bundle alike (tracing is not something only kind needs).
func TestTracingWiredInEveryScenario(t *testing.T) {
	t.Parallel()
	in := generatedKindInstall(t)
	addons := jaegerAddon(t)
	for _, profile := range matrix.Profiles() {
		for name, build := range map[string]func(*manifests.Tree) ([]byte, error){
			profile:             func(tr *manifests.Tree) ([]byte, error) { return tr.Build(matrix.ScenarioDir(profile)) },
			"bundle-" + profile: func(tr *manifests.Tree) ([]byte, error) { return bundle(tr, profile) },
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f, _, err := matrix.ParseProfile(profile)
				if err != nil {
					t.Fatal(err)
				}
				stream, err := build(sharedTree(t))
				if err != nil {
					t.Fatal(err)
				}
				if errs := checkTracing(in, addons, decodeRender(t, stream), f); len(errs) != 0 {
					t.Errorf("%v", errs)
				}
			})
		}
	}
}

// Broken wiring is caught: each case edits the install file (then istioctl generates it again)
// or the rendered default scenario, and checkTracing must name the problem.
func TestTracingCheckRejectsBrokenWiring(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	installFile, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(matrix.Sidecar.InstallFiles()[0])))
	if err != nil {
		t.Fatal(err)
	}
	rendered := map[matrix.Flavour][]byte{}
	for _, f := range matrix.Flavours() {
		b, err := sharedTree(t).Build(matrix.ScenarioDir(f.Profile("default")))
		if err != nil {
			t.Fatal(err)
		}
		rendered[f] = b
	}
	addons := jaegerAddon(t)
	cases := []struct {
		name, file, old, new, want string
		flavour                    matrix.Flavour // of the rendered default scenario edited; sidecar if empty
	}{
		{"provider on the OTLP/HTTP port", "install", "port: 4317", "port: 4318", "not a gRPC port", ""},
		{"provider at a Service the addon lacks", "install", "service: jaeger-collector.istio-system", "service: otel-collector.istio-system", "no Service istio-system/otel-collector", ""},
		{"no default provider", "install", "    defaultProviders:\n      tracing:\n        - jaeger-otlp\n", "", "ingress gateway does not trace", ""},
		{"gateway samples 1 %", "install", "traceSampling: 100.0", "traceSampling: 1.0", "PILOT_TRACE_SAMPLING", ""},
		{"Telemetry names an unknown provider", "render", "- name: jaeger-otlp", "- name: jaeger", `tracing provider "jaeger" is not`, ""},
		{"Telemetry samples 1 %", "render", "randomSamplingPercentage: 100", "randomSamplingPercentage: 1", "randomSamplingPercentage 1", ""},
		{"app exports to the gRPC port", "render", "svc.cluster.local:4318", "svc.cluster.local:4317", "not an HTTP port", ""},
		{"app exports to a Service the addon lacks", "render", "http://jaeger-collector.istio-system", "http://jaeger.istio-system", "no Service istio-system/jaeger", ""},
		{"app export through the sidecar", "render", "traffic.sidecar.istio.io/excludeOutboundPorts", "traffic.sidecar.istio.io/excludeInboundPorts", "excludeOutboundPorts", ""},
		{"app without exporter", "render", "name: OTEL_EXPORTER_OTLP_ENDPOINT", "name: OTEL_EXPORTER_OTLP_HEADERS", "no OTEL_EXPORTER_OTLP_ENDPOINT", ""},
		// gateway-api has sidecars: a Telemetry attached to a Gateway reaches none of them.
		{"gateway-api Telemetry attached to a Gateway", "render", "  tracing:\n", "  targetRefs:\n  - group: gateway.networking.k8s.io\n    kind: Gateway\n    name: waypoint\n  tracing:\n", "no namespace-wide Telemetry", matrix.GatewayAPI},
		{"gateway-api app export through the sidecar", "render", "traffic.sidecar.istio.io/excludeOutboundPorts", "traffic.sidecar.istio.io/excludeInboundPorts", "excludeOutboundPorts", matrix.GatewayAPI},
		// ambient: the Telemetry must reach the waypoint the namespace uses.
		{"ambient Telemetry attached to another Gateway", "render", "    kind: Gateway\n    name: waypoint\n  tracing:", "    kind: Gateway\n    name: meshdemo-gateway\n  tracing:", `reaches its waypoint "waypoint"`, matrix.Ambient},
		{"ambient namespace uses no rendered waypoint", "render", "istio.io/use-waypoint: waypoint", "istio.io/use-waypoint: mesh-waypoint", `uses waypoint "mesh-waypoint", which is not a rendered Gateway`, matrix.Ambient},
		{"ambient app without exporter", "render", "name: OTEL_EXPORTER_OTLP_ENDPOINT", "name: OTEL_EXPORTER_OTLP_HEADERS", "no OTEL_EXPORTER_OTLP_ENDPOINT", matrix.Ambient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := c.flavour
			if f == "" {
				f = matrix.Sidecar
			}
			in, objs := generatedKindInstall(t), decodeRender(t, rendered[f])
			src := rendered[f]
			if c.file == "install" {
				src = installFile
			}
			if !bytes.Contains(src, []byte(c.old)) {
				t.Fatalf("%s does not contain %q: the fixture no longer applies", c.file, c.old)
			}
			edited := bytes.ReplaceAll(src, []byte(c.old), []byte(c.new))
			if c.file == "install" {
				out, r := generate(t, writeTemp(t, "istio", edited))
				if r.err != nil {
					t.Fatalf("istioctl manifest generate: %v\n%s", r.err, r.stderr)
				}
				in = parseInstall(t, out)
			} else {
				objs = decodeRender(t, edited)
			}
			errs := checkTracing(in, addons, objs, f)
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e.Error(), c.want)
			}
			if !found {
				t.Fatalf("want an error containing %q, got %v", c.want, errs)
			}
		})
	}
}
