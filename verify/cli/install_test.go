package cli

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kind "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/yaml"
)

func istioVersion(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "build", "istio-version"))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(b))
	if !strings.HasPrefix(v, "1.31.") {
		t.Fatalf("build/istio-version %q: the pinned istio.io/api is 1.31.x, the release must match", v)
	}
	return v
}

// generate runs `istioctl manifest generate` (offline) on an IstioOperator file, exactly as
// `make istio-install` passes it to `istioctl install`.
func generate(t testing.TB, operatorFile string) ([]byte, result) {
	t.Helper()
	r := run(t, repoRoot(t), nil, tool(t, "ISTIOCTL", "istioctl"),
		"manifest", "generate", "-f", operatorFile, "--set", "tag="+istioVersion(t))
	return []byte(r.stdout), r
}

var (
	kindManifestOnce sync.Once
	kindManifest     []byte
	kindManifestErr  string
)

// generatedKindManifest is `istioctl manifest generate` of istio/sidecar/install.yaml, run
// once for every test that reads it.
func generatedKindManifest(t testing.TB) []byte {
	t.Helper()
	kindManifestOnce.Do(func() {
		out, r := generate(t, filepath.Join(repoRoot(t), filepath.FromSlash(matrix.Sidecar.InstallFiles()[0])))
		if r.err != nil {
			kindManifestErr = fmt.Sprintf("istioctl manifest generate: %v\n%s", r.err, r.stderr)
		}
		kindManifest = out
	})
	if kindManifestErr != "" {
		t.Fatal(kindManifestErr)
	}
	return kindManifest
}

// eachDoc calls fn with the kind, name and bytes of every YAML document in manifest.
func eachDoc(manifest []byte, fn func(kind, name string, doc []byte)) {
	reader := utilyaml.NewYAMLReader(bufioReader(manifest))
	for {
		doc, err := reader.Read()
		if err != nil {
			return
		}
		var head struct {
			Kind     string                `json:"kind"`
			Metadata struct{ Name string } `json:"metadata"`
		}
		if yaml.Unmarshal(doc, &head) == nil {
			fn(head.Kind, head.Metadata.Name, doc)
		}
	}
}

func loadKindCluster(t testing.TB, data []byte) (*kind.Cluster, error) {
	t.Helper()
	var c kind.Cluster
	return &c, yaml.UnmarshalStrict(data, &c)
}

// The install file renders with the pinned istioctl, its gateway is the NodePort the kind
// cluster publishes, its footprint is laptop-sized, and it serves what istio/sidecar/base expects:
// pods labelled istio=ingressgateway, Service port 80, service account of the authz scenario.
func TestIstioInstallMatchesKindAndMeshdemo(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	var gwSvc *corev1.Service
	deployments := map[string]*appsv1.Deployment{}
	eachDoc(generatedKindManifest(t), func(kind, _ string, doc []byte) {
		switch kind {
		case "Service":
			var s corev1.Service
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				t.Fatal(err)
			}
			if s.Name == "istio-ingressgateway" {
				gwSvc = &s
			}
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict(doc, &d); err != nil {
				t.Fatal(err)
			}
			deployments[d.Name] = &d
		}
	})
	if gwSvc == nil {
		t.Fatal("no istio-ingressgateway Service generated")
	}
	if gwSvc.Spec.Type != corev1.ServiceTypeNodePort {
		t.Errorf("ingress gateway Service type %q, want NodePort (kind has no LoadBalancer)", gwSvc.Spec.Type)
	}
	var nodePort int32
	for _, p := range gwSvc.Spec.Ports {
		if p.Port == 80 {
			nodePort = p.NodePort
		}
	}
	if nodePort == 0 {
		t.Fatalf("ingress gateway Service has no port 80 with a fixed nodePort: %+v", gwSvc.Spec.Ports)
	}
	if gwSvc.Spec.Selector["istio"] != "ingressgateway" {
		t.Errorf("ingress gateway selector %v, istio/sidecar/base's Gateway selects istio=ingressgateway", gwSvc.Spec.Selector)
	}

	data, err := os.ReadFile(filepath.Join(root, "build", "kind", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := loadKindCluster(t, data)
	if err != nil {
		t.Fatalf("build/kind/cluster.yaml: %v", err)
	}
	published := false
	for _, n := range cluster.Nodes {
		for _, m := range n.ExtraPortMappings {
			if m.ContainerPort == nodePort {
				published = true
				if m.HostPort != 8880 || m.ListenAddress != "127.0.0.1" {
					t.Errorf("nodePort %d published on %s:%d, the docs promise 127.0.0.1:8880", nodePort, m.ListenAddress, m.HostPort)
				}
			}
		}
	}
	if !published {
		t.Errorf("kind cluster does not publish the gateway's nodePort %d (extraPortMappings)", nodePort)
	}

	limits := map[string]string{"istiod": "512Mi", "istio-ingressgateway": "128Mi"}
	for name, maxMem := range limits {
		d, ok := deployments[name]
		if !ok {
			t.Errorf("Deployment %s not generated", name)
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if !strings.HasSuffix(c.Image, ":"+istioVersion(t)) {
			t.Errorf("%s image %s, want the pinned tag %s", name, c.Image, istioVersion(t))
		}
		mem := c.Resources.Requests[corev1.ResourceMemory]
		if mem.IsZero() || mem.Cmp(resource.MustParse(maxMem)) > 0 {
			t.Errorf("%s memory request %s, want set and <= %s", name, mem.String(), maxMem)
		}
		if d.Spec.Replicas != nil && *d.Spec.Replicas > 1 {
			t.Errorf("%s replicas %d, want 1", name, *d.Spec.Replicas)
		}
	}
	if gw := deployments["istio-ingressgateway"]; gw != nil {
		if gw.Spec.Template.Labels["istio"] != "ingressgateway" {
			t.Errorf("gateway pods labelled %v", gw.Spec.Template.Labels)
		}
		// The authz scenario allows the client to be called by this identity only.
		policies, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(matrix.Sidecar.Component("authz")), "policies.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		principal := fmt.Sprintf("cluster.local/ns/%s/sa/%s", gw.Namespace, gw.Spec.Template.Spec.ServiceAccountName)
		if !bytes.Contains(policies, []byte(principal)) {
			t.Errorf("authz policies do not name the gateway's identity %s", principal)
		}
	}
}

// An IstioOperator typo is rejected by istioctl (so `make istio-install` would fail early).
func TestIstioInstallRejectsUnknownField(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(matrix.Sidecar.InstallFiles()[0])))
	if err != nil {
		t.Fatal(err)
	}
	old := []byte("autoscaleEnabled: false")
	if !bytes.Contains(data, old) {
		t.Fatal("fixture no longer applies")
	}
	bad := writeTemp(t, "istio-bad", bytes.ReplaceAll(data, old, []byte("autoscaleEnable: false")))
	_, r := generate(t, bad)
	if r.err == nil || !strings.Contains(r.stderr, `unknown field "autoscaleEnable"`) {
		t.Fatalf("want failure naming the unknown field, got %v\n%s", r.err, r.stderr)
	}
}

// The kind config decodes strictly into kind's own v1alpha4 types; a typo does not.
func TestKindConfigStrict(t *testing.T) {
	t.Parallel()
	data, c := readKindCluster(t)
	if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" || c.Name != "meshdemo" {
		t.Errorf("kind config header %s %s name %q", c.APIVersion, c.Kind, c.Name)
	}
	if !slices.ContainsFunc(c.Nodes, func(n kind.Node) bool { return n.Role == kind.ControlPlaneRole }) {
		t.Error("no control-plane node")
	}
	bad := bytes.Replace(data, []byte("extraPortMappings"), []byte("extraPortMapping"), 1)
	if _, err := loadKindCluster(t, bad); err == nil || !strings.Contains(err.Error(), "extraPortMapping") {
		t.Errorf("typo accepted: %v", err)
	}
}

// kindLoad runs kind's own config loader on a file: the first thing `kind create cluster --config`
// does (cluster.CreateWithConfigFile: parse, strict decode, defaults, conversion to kind's
// internal config). kind offers no call that loads without creating, so Create gets a second
// option that always fails, a raw config of an unknown apiVersion: options apply in order and
// Create returns at the first error, before it touches Docker. (kind's Validate of the loaded
// config runs only after Docker answers; it is internal and not reached here.)
func kindLoad(t *testing.T, file string) error {
	t.Helper()
	// Belt and braces: no docker binary to find, should Create ever go further.
	t.Setenv("PATH", t.TempDir())
	const stop = "meshdemo.invalid/stop"
	err := kindcluster.NewProvider(kindcluster.ProviderWithDocker()).Create("meshdemo-preflight",
		kindcluster.CreateWithConfigFile(file),
		kindcluster.CreateWithRawConfig([]byte("apiVersion: "+stop+"\nkind: Cluster\n")))
	switch {
	case err == nil:
		t.Fatal("kind's Create returned no error: the stop option did not stop it")
	case strings.Contains(err.Error(), "unknown apiVersion: "+stop):
		return nil
	}
	return err
}

// kind's own loader accepts build/kind/cluster.yaml and rejects a typo in it. Not parallel:
// kindLoad empties PATH for its duration.
func TestKindLoaderAcceptsClusterConfig(t *testing.T) {
	file := filepath.Join(repoRoot(t), "build", "kind", "cluster.yaml")
	if err := kindLoad(t, file); err != nil {
		t.Fatalf("kind cannot load %s: %v", file, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"typo":        {"extraPortMappings", "extraPortMapping"},
		"api version": {"kind.x-k8s.io/v1alpha4", "kind.x-k8s.io/v1alpha3"},
		"port string": {"hostPort: 8880", "hostPort: http"},
	} {
		if !bytes.Contains(data, []byte(edit[0])) {
			t.Errorf("%s: fixture no longer applies", name)
			continue
		}
		bad := writeTemp(t, "cluster", bytes.Replace(data, []byte(edit[0]), []byte(edit[1]), 1))
		if err := kindLoad(t, bad); err == nil {
			t.Errorf("%s: kind loaded the broken config", name)
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// `make kind-up` installs the kind release whose config types decode build/kind/cluster.yaml here.
func TestKindVersionMatchesMakefile(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "sigs.k8s.io/kind")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/kind: %v", err)
	}
	version := strings.TrimSpace(string(out))
	mk, err := os.ReadFile(filepath.Join(repoRoot(t), "build", "make", "k8s.mk"))
	if err != nil {
		t.Fatal(err)
	}
	if version == "" || !bytes.Contains(mk, []byte("\nKIND_VERSION := "+version+"\n")) {
		t.Errorf("verify decodes with kind %q, build/make/k8s.mk does not pin KIND_VERSION := %s", version, version)
	}
}

// flavourInstall is what `istioctl manifest generate` makes of a flavour's IstioOperator files
// (istio/sidecar/install.yaml and the flavour's overlay, in the order `make istio-install
// FLAVOUR=...` passes them), reduced to what the checks read.
type flavourInstall struct {
	deployments map[string]*appsv1.Deployment
	daemonSets  map[string]*appsv1.DaemonSet
	services    []corev1.Service
	install     // mesh config and istiod's environment (tracing_test.go)
	// gatewaySeccomp: values.gateways.seccompProfile.type (installdoc_test.go)
	gatewaySeccomp string
}

func generateFiles(t testing.TB, files ...string) ([]byte, result) {
	t.Helper()
	args := []string{"manifest", "generate"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	r := run(t, repoRoot(t), nil, tool(t, "ISTIOCTL", "istioctl"), append(args, "--set", "tag="+istioVersion(t))...)
	return []byte(r.stdout), r
}

func parseFlavourInstall(t testing.TB, manifest []byte) flavourInstall {
	t.Helper()
	fi := flavourInstall{deployments: map[string]*appsv1.Deployment{}, daemonSets: map[string]*appsv1.DaemonSet{}}
	eachDoc(manifest, func(kind, _ string, doc []byte) {
		var err error
		switch kind {
		case "Deployment":
			var d appsv1.Deployment
			err = yaml.UnmarshalStrict(doc, &d)
			fi.deployments[d.Name] = &d
		case "DaemonSet":
			var d appsv1.DaemonSet
			err = yaml.UnmarshalStrict(doc, &d)
			fi.daemonSets[d.Name] = &d
		case "Service":
			var s corev1.Service
			err = yaml.UnmarshalStrict(doc, &s)
			fi.services = append(fi.services, s)
		}
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	})
	fi.install = parseInstall(t, manifest)
	return fi
}

// readKindCluster reads build/kind/cluster.yaml and decodes it strictly into kind's types.
func readKindCluster(t testing.TB) ([]byte, *kind.Cluster) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "build", "kind", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadKindCluster(t, data)
	if err != nil {
		t.Fatal(err)
	}
	return data, c
}

// publishedNodePort is the node port build/kind/cluster.yaml publishes on 127.0.0.1:8880.
func publishedNodePort(t testing.TB) int32 {
	t.Helper()
	_, c := readKindCluster(t)
	for _, n := range c.Nodes {
		for _, m := range n.ExtraPortMappings {
			if m.HostPort == 8880 {
				return m.ContainerPort
			}
		}
	}
	t.Fatal("build/kind/cluster.yaml publishes nothing on 8880")
	return 0
}

// checkFlavourInstall is what a flavour's install must be on kind:
//   - every flavour: istiod, one replica, the pinned tag, a laptop-sized memory request; the
//     jaeger-otlp tracing provider (OTLP to the Jaeger addon's collector) as the mesh default;
//   - gateway-api and ambient: no classic ingress gateway and no other Deployment than istiod,
//     and no Service on the node port kind publishes: the Gateway API gateway's Service
//     (created by istiod from istio/gateway-api/ingress) takes it;
//   - every flavour: the istio-cni node agent (DaemonSet istio-cni-node), laptop-sized: it
//     writes the pods' traffic redirection, so the injector adds no privileged istio-init and
//     meshdemo can enforce Pod Security `restricted` (docs/kubernetes.md);
//   - gateway-api: no ztunnel;
//   - ambient: the ztunnel DaemonSet, laptop-sized, and istiod with ambient on.
func checkFlavourInstall(flavour string, fi flavourInstall, nodePort int32, tag string) []error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	small := func(what string, c corev1.Container, max string) {
		// The ambient profile picks Istio's distroless variant: <tag>-distroless.
		if _, got, _ := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":"); got != tag && got != tag+"-distroless" {
			bad("%s image %s, want the pinned tag %s", what, c.Image, tag)
		}
		mem := c.Resources.Requests[corev1.ResourceMemory]
		if mem.IsZero() || mem.Cmp(resource.MustParse(max)) > 0 {
			bad("%s memory request %s, want set and <= %s (laptop-sized)", what, mem.String(), max)
		}
	}
	istiod := fi.deployments["istiod"]
	if istiod == nil {
		bad("no istiod Deployment")
	} else {
		small("istiod", istiod.Spec.Template.Spec.Containers[0], "512Mi")
		if istiod.Spec.Replicas != nil && *istiod.Spec.Replicas > 1 {
			bad("istiod replicas %d, want 1", *istiod.Spec.Replicas)
		}
	}
	if got := fi.mesh.GetDefaultProviders().GetTracing(); !slices.Equal(got, []string{"jaeger-otlp"}) {
		bad("mesh default tracing providers %v, want [jaeger-otlp]", got)
	}
	found := false
	for _, p := range fi.mesh.GetExtensionProviders() {
		if otel := p.GetOpentelemetry(); p.GetName() == "jaeger-otlp" && otel != nil &&
			otel.GetService() == "jaeger-collector.istio-system.svc.cluster.local" && otel.GetPort() == 4317 {
			found = true
		}
	}
	if !found {
		bad("no extension provider jaeger-otlp exporting OTLP to jaeger-collector.istio-system.svc.cluster.local:4317")
	}
	if ds := fi.daemonSets["istio-cni-node"]; ds == nil {
		bad("no DaemonSet istio-cni-node (every flavour needs the CNI node agent: without it the injector adds istio-init, root with NET_ADMIN and NET_RAW, which Pod Security restricted refuses)")
	} else {
		small("istio-cni-node", ds.Spec.Template.Spec.Containers[0], "128Mi")
	}
	if flavour == "sidecar" {
		return errs
	}
	for name := range fi.deployments {
		if name != "istiod" {
			bad("Deployment %s: the %s flavour installs istiod only (no classic ingress gateway: the Gateway API gateway is the ingress)", name, flavour)
		}
	}
	for _, s := range fi.services {
		for _, p := range s.Spec.Ports {
			if p.NodePort == nodePort {
				bad("Service %s holds nodePort %d, which the Gateway API gateway's Service needs", s.Name, nodePort)
			}
		}
	}
	switch flavour {
	case "gateway-api":
		for name := range fi.daemonSets {
			if name != "istio-cni-node" {
				bad("DaemonSet %s: the gateway-api flavour runs sidecars, not ambient's node agents", name)
			}
		}
	case "ambient":
		if ds := fi.daemonSets["ztunnel"]; ds == nil {
			bad("no DaemonSet ztunnel (ambient needs it on every node)")
		} else {
			small("ztunnel", ds.Spec.Template.Spec.Containers[0], "128Mi")
		}
		if fi.istiodEnv["PILOT_ENABLE_AMBIENT"] != "true" {
			bad("istiod PILOT_ENABLE_AMBIENT=%q, want true", fi.istiodEnv["PILOT_ENABLE_AMBIENT"])
		}
	}
	return errs
}

// Each flavour's IstioOperator files go through the pinned istioctl's own manifest generate,
// and the result is what the flavour needs on kind (checkFlavourInstall).
func TestIstioInstallPerFlavour(t *testing.T) {
	t.Parallel()
	nodePort, tag := publishedNodePort(t), istioVersion(t)
	for _, f := range matrix.Flavours() {
		flavour, files := f.String(), f.InstallFiles()
		t.Run(flavour, func(t *testing.T) {
			t.Parallel()
			out, r := generateFiles(t, files...)
			if r.err != nil {
				t.Fatalf("istioctl manifest generate %v: %v\n%s", files, r.err, r.stderr)
			}
			fi := parseFlavourInstall(t, out)
			for _, err := range checkFlavourInstall(flavour, fi, nodePort, tag) {
				t.Error(err)
			}
			// The tag check is not a rubber stamp (a file's tag cannot show it: the command
			// line's --set tag wins, in install as in generate).
			errs := checkFlavourInstall(flavour, fi, nodePort, "1.30.0")
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), "want the pinned tag 1.30.0") }) {
				t.Errorf("another tag accepted: %v", errs)
			}
		})
	}
}

// Each check of checkFlavourInstall fails on an overlay broken the way it guards against,
// regenerated by istioctl.
func TestIstioInstallPerFlavourRejectsBrokenOverlays(t *testing.T) {
	t.Parallel()
	nodePort, tag := publishedNodePort(t), istioVersion(t)
	tests := []struct {
		name, flavour, old, new, want string
	}{
		{"classic ingress gateway left on", "gateway-api", "enabled: false", "enabled: true", "Deployment istio-ingressgateway"},
		{"another Service on the published node port", "gateway-api", "  components:\n",
			"  components:\n    egressGateways:\n      - name: istio-egressgateway\n        enabled: true\n        k8s:\n          service:\n            type: NodePort\n" +
				"            ports:\n              - {name: http2, port: 80, targetPort: 8080, nodePort: 30080}\n", "holds nodePort 30080"},
		{"ambient's node agents in gateway-api", "gateway-api", "spec:\n", "spec:\n  profile: ambient\n", "DaemonSet ztunnel"},
		{"CNI off in sidecar", "sidecar", "    cni:\n      enabled: true\n", "    cni:\n      enabled: false\n", "no DaemonSet istio-cni-node"},
		{"CNI off in gateway-api", "gateway-api", "  components:\n", "  components:\n    cni:\n      enabled: false\n", "no DaemonSet istio-cni-node"},
		{"CNI not laptop-sized", "ambient", "  components:\n", "  components:\n    cni:\n      k8s:\n        resources:\n          requests:\n            memory: 2Gi\n", "istio-cni-node memory request 2Gi"},
		{"not the ambient profile", "ambient", "  profile: ambient\n", "", "PILOT_ENABLE_AMBIENT"},
		{"ztunnel off", "ambient", "    ztunnel:\n", "    ztunnel:\n      enabled: false\n", "no DaemonSet ztunnel"},
		{"ztunnel not laptop-sized", "ambient", "    ztunnel:\n      k8s:\n        resources:\n          requests:\n            cpu: 10m\n            memory: 40Mi\n",
			"    ztunnel:\n      k8s:\n        resources:\n          requests:\n            cpu: 10m\n            memory: 2Gi\n", "ztunnel memory request 2Gi"},
		{"istiod not laptop-sized", "ambient", "  components:\n", "  components:\n    pilot:\n      k8s:\n        resources:\n          requests:\n            memory: 2Gi\n", "istiod memory request 2Gi"},
		{"another default tracing provider", "ambient", "spec:\n", "spec:\n  meshConfig:\n    defaultProviders:\n      tracing:\n        - zipkin\n", "want [jaeger-otlp]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := matrix.Flavour(tt.flavour).InstallFiles()
			overlay := filepath.Join(repoRoot(t), files[len(files)-1])
			data, err := os.ReadFile(overlay)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(tt.old)) {
				t.Fatalf("fixture no longer applies: %q not in %s", tt.old, overlay)
			}
			files[len(files)-1] = writeTemp(t, "overlay", bytes.Replace(data, []byte(tt.old), []byte(tt.new), 1))
			out, r := generateFiles(t, files...)
			if r.err != nil {
				t.Fatalf("istioctl manifest generate: %v\n%s", r.err, r.stderr)
			}
			errs := checkFlavourInstall(tt.flavour, parseFlavourInstall(t, out), nodePort, tag)
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tt.want) }) {
				t.Errorf("want an error mentioning %q, got %v", tt.want, errs)
			}
		})
	}
}
