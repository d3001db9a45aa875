package cli

import (
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

// generatedKindManifest is `istioctl manifest generate` of build/kind/istio.yaml, run
// once for every test that reads it.
func generatedKindManifest(t testing.TB) []byte {
	t.Helper()
	kindManifestOnce.Do(func() {
		out, r := generate(t, filepath.Join(repoRoot(t), "build", "kind", "istio.yaml"))
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
// cluster publishes, its footprint is laptop-sized, and it serves what istio/base expects:
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
		t.Errorf("ingress gateway selector %v, istio/base's Gateway selects istio=ingressgateway", gwSvc.Spec.Selector)
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
		policies, err := os.ReadFile(filepath.Join(root, "istio", "components", "authz", "policies.yaml"))
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
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "build", "kind", "istio.yaml"))
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
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "build", "kind", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadKindCluster(t, data)
	if err != nil {
		t.Fatal(err)
	}
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
