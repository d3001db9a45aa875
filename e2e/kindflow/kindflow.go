// Package kindflow plans and runs the commands of meshdemo on kind: the cluster, the Istio
// install of a flavour, the images (skaffold build, kind load), the deploy of a scenario with
// the prune of what the previous one left, the suite and the teardown.
//
// The same steps serve three callers: `make e2e`, `make istio-install` and `make deploy` execute
// them (cmd/e2e-kind), the suite switches scenarios with them on kind, and the dry run prints
// them. What the manifests hold is verify's business (strict decoding, rules, istioctl analyze,
// skaffold render); here only the commands are planned and checked.
package kindflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"gopkg.in/yaml.v3"
)

// Tool versions the kind flow was written against (`make e2e` prints what is installed).
// Istio's version is read from build/istio-version; skaffold and istioctl are built from the
// pins in build/tools, so they always match.
const (
	KindVersion    = "v0.30.0"
	KubectlVersion = "v1.34"
	DockerVersion  = "28"
	NodeImageNote  = "kind's default node image for " + KindVersion
)

// Baseline is the scenario every scenario test starts from and returns to: v1 and v2 running,
// base routes (everything to v1).
const Baseline = "canary"

// Config names the cluster and where things are. Zero fields take the defaults.
type Config struct {
	Root        string         // repository root (absolute)
	Cluster     string         // kind cluster name: meshdemo
	Namespace   string         // meshdemo
	Flavour     matrix.Flavour // which deploy/scenarios and Istio install; "" is sidecar
	IstioTag    string         // from build/istio-version
	GatewayURL  string         // http://127.0.0.1:8880 (build/kind/cluster.yaml maps the NodePort there)
	Host        string         // client.meshdemo
	KeepCluster bool           // leave the cluster running after the tests
	TestArgs    []string
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() (Config, error) {
	if c.Root == "" {
		root, err := FindRoot()
		if err != nil {
			return c, err
		}
		c.Root = root
	}
	if c.Cluster == "" {
		c.Cluster = "meshdemo"
	}
	if c.Namespace == "" {
		c.Namespace = "meshdemo"
	}
	f, err := matrix.ParseFlavour(string(c.Flavour))
	if err != nil {
		return c, err
	}
	c.Flavour = f
	if c.IstioTag == "" {
		b, err := os.ReadFile(filepath.Join(c.Root, "build", "istio-version"))
		if err != nil {
			return c, fmt.Errorf("istio version: %w", err)
		}
		c.IstioTag = strings.TrimSpace(string(b))
	}
	if c.GatewayURL == "" {
		c.GatewayURL = "http://127.0.0.1:8880"
	}
	if c.Host == "" {
		c.Host = "client.meshdemo"
	}
	return c, nil
}

// Context is kind's kubeconfig context for the cluster.
func (c Config) Context() string { return "kind-" + c.Cluster }

// FindRoot walks up from the working directory to the folder holding go.work.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// Step is one command of the flow.
type Step struct {
	Name string
	Args []string // argv; Args[0] is looked up in PATH unless it contains a slash
	Dir  string   // relative to the root; "" is the root
	Env  []string // added to the environment
	// BinOnPath puts the repository's bin/ first on PATH (skaffold calls kustomize by name).
	BinOnPath bool
	// Unless, when it exits 0, makes the step unnecessary (for example the cluster exists).
	Unless []string
	// Always steps run even after an earlier step failed (teardown).
	Always bool
	// Check, when set, receives the command's standard output and fails the step with a
	// message of its own (the flavour guard); Note says in the printed plan what it checks.
	Check func(stdout []byte) error
	Note  string
}

// String renders the step as a shell line, for printing.
func (s Step) String() string {
	var b strings.Builder
	if s.Dir != "" {
		fmt.Fprintf(&b, "(cd %s && ", s.Dir)
	}
	if s.BinOnPath {
		b.WriteString(`PATH="$PWD/bin:$PATH" `)
	}
	for _, e := range s.Env {
		b.WriteString(quote(e) + " ")
	}
	for i, a := range s.Args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quote(a))
	}
	if s.Dir != "" {
		b.WriteByte(')')
	}
	if len(s.Unless) > 0 {
		b.WriteString("   # skipped when `" + strings.Join(s.Unless, " ") + "` succeeds")
	}
	if s.Note != "" {
		b.WriteString("   # " + s.Note)
	}
	return b.String()
}

func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"$`\\|&;<>(){}*?!#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (c Config) kubectl(args ...string) []string {
	return append([]string{"kubectl", "--context", c.Context()}, args...)
}

// Flow is the whole `make e2e` sequence, in order. The workloads are deployed once, by
// Deploy (kubectl apply -k of the baseline), never by skaffold as well: skaffold only builds.
func (c Config) Flow(ctx context.Context) ([]Step, error) {
	var s []Step
	add := func(st Step) { s = append(s, st) }
	// kind at the version k8s.mk pins, built from source into bin/ like the other CLIs.
	add(Step{Name: "kind", Env: []string{"GOWORK=off", "GOBIN=" + filepath.Join(c.Root, "bin")},
		Args: []string{"go", "install", "sigs.k8s.io/kind@" + KindVersion}})
	add(Step{Name: "versions", Args: []string{"bin/kind", "version"}})
	add(Step{Name: "versions", Args: []string{"kubectl", "version", "--client"}})
	add(Step{Name: "versions", Args: []string{"docker", "version", "--format", "{{.Server.Version}}"}})
	// The pinned CLIs, built from build/tools (GOWORK=off keeps Istio's pins out of go.work).
	add(Step{Name: "istioctl", Dir: "build/tools", Env: []string{"GOWORK=off"},
		Args: []string{"go", "build", "-o", "../../bin/istioctl", "istio.io/istio/istioctl/cmd/istioctl"}})
	add(Step{Name: "skaffold", Dir: "build/tools/skaffold", Env: []string{"GOWORK=off"},
		Args: []string{"go", "build", "-o", "../../../bin/skaffold", "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold"}})
	add(Step{Name: "kustomize", Dir: "build/tools", Env: []string{"GOWORK=off"},
		Args: []string{"go", "build", "-o", "../../bin/kustomize", "sigs.k8s.io/kustomize/kustomize/v5"}})
	add(Step{Name: "loadtest", Dir: "loadtest", Env: []string{"GOWORK=off", "CGO_ENABLED=0"},
		Args: []string{"go", "build", "-o", "../bin/loadtest", "./cmd/loadtest"}})
	add(Step{Name: "cluster", Args: []string{"bin/kind", "create", "cluster", "--name", c.Cluster, "--config", "build/kind/cluster.yaml", "--wait", "120s"},
		Unless: c.kubectl("get", "namespace", "kube-system")})
	install, err := c.IstioInstall(ctx)
	if err != nil {
		return nil, err
	}
	s = append(s, install...)
	s = append(s, c.Images()...)
	deploy, err := c.Deploy(ctx, Baseline)
	if err != nil {
		return nil, err
	}
	s = append(s, deploy...)
	testArgs := append([]string{"go", "test", "-tags", "e2e", "-count=1", "-timeout", "60m", "-v", "./suite"}, c.TestArgs...)
	add(Step{Name: "test", Dir: "e2e", Args: testArgs, Env: []string{
		"E2E_TARGET=kind", "E2E_BASE_URL=" + c.GatewayURL, "E2E_HOST=" + c.Host, "E2E_KUBE_CONTEXT=" + c.Context(),
		"E2E_NAMESPACE=" + c.Namespace, "E2E_FLAVOUR=" + c.Flavour.String(), "E2E_LOADTEST=" + filepath.Join(c.Root, "bin", "loadtest"),
	}})
	if !c.KeepCluster {
		add(Step{Name: "teardown", Args: []string{"bin/kind", "delete", "cluster", "--name", c.Cluster}, Always: true})
	}
	return s, nil
}

// IstioInstall installs the pinned Istio for the run's flavour and waits for it (`make
// istio-install FLAVOUR=...` runs the same commands):
//   - a guard: the cluster's Istio, if any, is of this flavour (FlavourLabel);
//   - the Gateway API CRDs of the module the pinned Istio requires (GatewayAPICRDs),
//     server-side (the CRDs are too large for the last-applied annotation). gateway-api and
//     ambient need them; sidecar gets them too (its objects do not use them), so that the
//     prune of every Deploy may name every kind some flavour renders: kubectl delete fails on
//     a resource type the cluster does not know, even with --ignore-not-found;
//   - istioctl install of the flavour's IstioOperator files (matrix Flavour.InstallFiles);
//   - the flavour label on istio-system;
//   - rollout status of istiod and of the istio-cni node agent (every flavour: it writes the
//     pods' traffic redirection, so injected pods hold no privileged istio-init and meshdemo
//     can enforce Pod Security restricted; a pod created before it is ready fails its
//     istio-validation init container), then of the classic ingress gateway (sidecar) or of
//     ztunnel (ambient).
func (c Config) IstioInstall(ctx context.Context) ([]Step, error) {
	_, crds, err := c.GatewayAPICRDs(ctx)
	if err != nil {
		return nil, err
	}
	s := []Step{c.FlavourGuard("istio", true), {Name: "istio", Args: c.kubectl("apply", "--server-side", "-k", crds)}}
	install := []string{"bin/istioctl", "install", "--context", c.Context(), "-y"}
	for _, f := range c.Flavour.InstallFiles() {
		install = append(install, "-f", f)
	}
	s = append(s,
		Step{Name: "istio", Args: append(install, "--set", "tag="+c.IstioTag)},
		Step{Name: "istio", Args: c.kubectl("label", "namespace", "istio-system", "--overwrite", FlavourLabel+"="+c.Flavour.String())},
		Step{Name: "istio", Args: c.kubectl("-n", "istio-system", "rollout", "status", "deployment/istiod", "--timeout=300s")},
		Step{Name: "istio", Args: c.kubectl("-n", "istio-system", "rollout", "status", "daemonset/istio-cni-node", "--timeout=300s")})
	if !c.Flavour.GatewayAPIRoutes() { // the classic ingress gateway; the others' is a Gateway, waited for by Deploy
		s = append(s, Step{Name: "istio", Args: c.kubectl("-n", "istio-system", "rollout", "status", "deployment/istio-ingressgateway", "--timeout=300s")})
	}
	if !c.Flavour.Sidecars() {
		s = append(s, Step{Name: "istio", Args: c.kubectl("-n", "istio-system", "rollout", "status", "daemonset/ztunnel", "--timeout=300s")})
	}
	return s, nil
}

// Images builds the four images and puts them in the kind node. skaffold only builds here
// (`skaffold build --tag dev`: the local daemon ends up holding meshdemo/<w>:dev, also on a
// cache hit, which re-tags); it does not deploy, because skaffold's deploy would name its
// own image references (meshdemo/<w>:<image id>) and add its run-id label, so a
// `kubectl apply -k` of the same scenario afterwards would roll every Deployment out again.
// The scenario manifests name :dev with imagePullPolicy Never, which `kind load` satisfies.
func (c Config) Images() []Step {
	load := []string{"bin/kind", "load", "docker-image", "--name", c.Cluster}
	for _, w := range matrix.WorkloadNames() {
		load = append(load, matrix.LocalImage(w)+":dev")
	}
	return []Step{
		{Name: "images", BinOnPath: true, Args: []string{"bin/skaffold", "build", "--kube-context", c.Context(), "--tag", "dev", "--push=false"}},
		{Name: "images", Args: load},
	}
}

// Object is the part of a rendered manifest the flow and its checks read.
type Object struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Doc        map[string]any
}

// Key identifies the object in a cluster.
func (o Object) Key() string { return o.APIVersion + "/" + o.Kind + "/" + o.Namespace + "/" + o.Name }

// rendered memoises Render: the plan applies the baseline once per scenario.
var rendered sync.Map // root + "\x00" + dir -> []Object

// Render runs `kubectl kustomize` (kustomize built into kubectl, offline; the flow applies
// with `kubectl apply -k`, the same renderer) on dir and decodes every document. With
// KUSTOMIZE set it runs `$KUSTOMIZE build` instead. Results are cached per process; callers must not modify them.
func Render(ctx context.Context, root, dir string) ([]Object, error) {
	key := root + "\x00" + dir
	if v, ok := rendered.Load(key); ok {
		return v.([]Object), nil
	}
	objs, err := render(ctx, root, dir)
	if err == nil {
		rendered.Store(key, objs)
	}
	return objs, err
}

func render(ctx context.Context, root, dir string) ([]Object, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	argv := []string{"kubectl", "kustomize", dir}
	if k := os.Getenv("KUSTOMIZE"); k != "" { // a kustomize binary instead, where kubectl is missing
		argv = []string{k, "build", dir}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return Decode(stdout.Bytes())
}

// Decode splits a multi-document YAML stream into objects, rejecting documents without
// apiVersion, kind or metadata.name.
func Decode(b []byte) ([]Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []Object
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if doc == nil {
			continue
		}
		o := Object{Doc: doc}
		o.APIVersion, _ = doc["apiVersion"].(string)
		o.Kind, _ = doc["kind"].(string)
		meta, _ := doc["metadata"].(map[string]any)
		o.Name, _ = meta["name"].(string)
		o.Namespace, _ = meta["namespace"].(string)
		if o.APIVersion == "" || o.Kind == "" || o.Name == "" {
			return nil, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required (got %q %q %q)", i, o.APIVersion, o.Kind, o.Name)
		}
		out = append(out, o)
	}
}

// Runner executes steps, or only prints them when DryRun is set.
type Runner struct {
	Root   string
	DryRun bool
	Out    io.Writer // each command is printed here before it runs
	Stdout io.Writer // the commands' own output
	Stderr io.Writer
}

// Run executes the steps in order. After a failure only Always steps run; the first error
// is returned.
func (r Runner) Run(ctx context.Context, steps []Step) error {
	var first error
	for _, s := range steps {
		if first != nil && !s.Always {
			continue
		}
		if err := r.one(ctx, s); err != nil && first == nil {
			first = fmt.Errorf("step %q (%s): %w", s.Name, s, err)
		}
	}
	return first
}

func (r Runner) one(ctx context.Context, s Step) error {
	fmt.Fprintf(r.Out, "+ [%s] %s\n", strings.TrimSpace(s.Name), s)
	if r.DryRun {
		return nil
	}
	if len(s.Unless) > 0 {
		probe := exec.CommandContext(ctx, s.Unless[0], s.Unless[1:]...)
		probe.Dir = r.Root
		if probe.Run() == nil {
			fmt.Fprintf(r.Out, "  (skipped: `%s` succeeded)\n", strings.Join(s.Unless, " "))
			return nil
		}
	}
	cmd := exec.CommandContext(ctx, s.Args[0], s.Args[1:]...)
	cmd.Dir = filepath.Join(r.Root, s.Dir)
	cmd.Env = os.Environ()
	if s.BinOnPath {
		cmd.Env = append(cmd.Env, "PATH="+filepath.Join(r.Root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	cmd.Env = append(cmd.Env, s.Env...)
	cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	if s.Check == nil {
		return cmd.Run()
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return err
	}
	return s.Check(out.Bytes())
}
