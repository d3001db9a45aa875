package pilot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	meshconfig "istio.io/api/mesh/v1alpha1"
	operatorrender "istio.io/istio/operator/pkg/render"
	"istio.io/istio/operator/pkg/util/clog"
	"istio.io/istio/pilot/pkg/features"
	istiomesh "istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/kube/inject"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
)

// Pod Security `restricted` for the namespace meshdemo, as the API server would judge each pod
// after the sidecar injector wrote it (docs/kubernetes.md, "Pod Security: restricted, sidecars
// included"). Three pieces of upstream code, nothing re-implemented:
//   - the kind install (istio/sidecar/install.yaml and the flavour's overlay) rendered by the operator
//     code istioctl install runs (istio.io/istio/operator/pkg/render GenerateManifest); from it the
//     injector's ConfigMap istio-sidecar-injector (templates and values) and the mesh config;
//   - Istio's injection over every pod template (istio.io/istio/pkg/kube/inject IntoObject, the
//     code of `istioctl kube-inject`, which runs the same templates as the webhook), once with
//     native sidecars (the istio-proxy an init container with restartPolicy Always: what istiod
//     picks on Kubernetes >= 1.33, DetectNativeSidecar in pkg/kube/inject/webhook.go) and once
//     classic (a regular container);
//   - the policy checks of the PodSecurity admission plugin (k8s.io/pod-security-admission/policy
//     DefaultChecks through NewEvaluator), at level restricted, version latest, and its parsing
//     of the namespace's labels (api.PolicyToEvaluate).
//
// The API server defaults a pod before admission sees it. One rule of that defaulting decides a
// restricted check, and k8s.io/kubernetes cannot be imported, so apiServerDefaults applies that
// one rule by hand: a volume without a source becomes an emptyDir. Istio's injection template
// writes its workload-socket, credential-socket and workload-certs volumes as `emptyDir:` (null),
// which the checks would otherwise call `restricted volume type "unknown"`. Every other restricted
// check reads securityContext fields, host namespaces and ports, which the v1 defaulting leaves
// as they are.

// psaRestricted is the level the namespace enforces.
var psaRestricted = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

var psaEvaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// injector is what the sidecar injector of an install works with.
type injector struct {
	templates inject.Templates
	values    inject.ValuesConfig
	mesh      *meshconfig.MeshConfig
}

// renderedInjectors memoises kindInjector per list of files (the render takes seconds).
var renderedInjectors sync.Map // strings.Join(files, "\x00") -> *injectorResult

type injectorResult struct {
	once sync.Once
	inj  injector
	err  error
}

// kindInjector renders the IstioOperator files (absolute paths) as `istioctl install` does,
// with the pinned tag, and reads the injector's ConfigMap and the mesh config from the result.
func kindInjector(t testing.TB, files []string) injector {
	t.Helper()
	v, _ := renderedInjectors.LoadOrStore(strings.Join(files, "\x00"), &injectorResult{})
	r := v.(*injectorResult)
	r.once.Do(func() { r.inj, r.err = renderInjector(t, files) })
	if r.err != nil {
		t.Fatalf("injector of %v: %v", files, r.err)
	}
	return r.inj
}

func renderInjector(t testing.TB, files []string) (injector, error) {
	tag, err := os.ReadFile(filepath.Join(repoRoot(t), "build", "istio-version"))
	if err != nil {
		return injector{}, err
	}
	sets, _, err := operatorrender.GenerateManifest(files, []string{"tag=" + strings.TrimSpace(string(tag))}, false, nil,
		clog.NewConsoleLogger(io.Discard, io.Discard, nil))
	if err != nil {
		return injector{}, err
	}
	var injData, meshData map[string]string
	for _, s := range sets {
		for _, m := range s.Manifests {
			if m.GetKind() != "ConfigMap" || m.GetNamespace() != "istio-system" {
				continue
			}
			data := map[string]string{}
			for k, v := range m.Object["data"].(map[string]any) {
				data[k], _ = v.(string)
			}
			switch m.GetName() {
			case "istio-sidecar-injector":
				injData = data
			case "istio":
				meshData = data
			}
		}
	}
	if injData == nil || meshData == nil {
		return injector{}, errors.New("the render has no ConfigMap istio-system/istio-sidecar-injector or istio-system/istio")
	}
	cfg, err := inject.UnmarshalConfig([]byte(injData["config"]))
	if err != nil {
		return injector{}, err
	}
	var inj injector
	if inj.templates, err = inject.ParseTemplates(cfg.RawTemplates); err != nil {
		return injector{}, err
	}
	if inj.values, err = inject.NewValuesConfig(injData["values"]); err != nil {
		return injector{}, err
	}
	if inj.mesh, err = istiomesh.ApplyMeshConfigDefaults(meshData["mesh"]); err != nil {
		return injector{}, err
	}
	return inj, nil
}

// podOf is one pod template of a render, after injection when the flavour injects.
type podOf struct {
	name     string // render dir, kind/name
	meta     metav1.ObjectMeta
	spec     corev1.PodSpec
	injected bool // holds an istio-proxy
}

// injectPods runs Istio's injection (inj nil: none) over every workload of objs in meshdemo and
// returns their pod templates. native picks native sidecars or classic ones.
func injectPods(objs []object, inj *injector, native bool) ([]podOf, error) {
	var pods []podOf
	for _, o := range objs {
		switch o.kind() {
		case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod":
		default:
			continue
		}
		if o.namespace() != namespace {
			continue
		}
		b, err := json.Marshal(map[string]any(o))
		if err != nil {
			return nil, err
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", o.kind(), o.name(), err)
		}
		if inj != nil {
			var mode features.NativeSidecarMode = features.NativeSidecarModeDisabled
			if native {
				mode = features.NativeSidecarModeEnabled
			}
			// IntoObject without an injector reads the mode from the feature flag
			// (pkg/kube/inject/inject.go IntoObject: "if injector or client is nil, enable
			// native sidecars if the feature is explicitly enabled").
			saved := features.EnableNativeSidecars
			features.EnableNativeSidecars = mode
			out, err := inject.IntoObject(nil, inj.templates, inj.values, "", inj.mesh, obj, func(string) {})
			features.EnableNativeSidecars = saved
			if err != nil {
				return nil, fmt.Errorf("inject %s/%s: %w", o.kind(), o.name(), err)
			}
			obj = out.(runtime.Object)
		}
		var tmpl corev1.PodTemplateSpec
		switch w := obj.(type) {
		case *appsv1.Deployment:
			tmpl = w.Spec.Template
		case *appsv1.StatefulSet:
			tmpl = w.Spec.Template
		case *appsv1.DaemonSet:
			tmpl = w.Spec.Template
		case *appsv1.ReplicaSet:
			tmpl = w.Spec.Template
		case *batchv1.Job:
			tmpl = w.Spec.Template
		case *batchv1.CronJob:
			tmpl = w.Spec.JobTemplate.Spec.Template
		case *corev1.Pod:
			tmpl = corev1.PodTemplateSpec{ObjectMeta: w.ObjectMeta, Spec: w.Spec}
		default:
			return nil, fmt.Errorf("%s/%s decoded as %T", o.kind(), o.name(), obj)
		}
		apiServerDefaults(&tmpl.Spec)
		p := podOf{name: o.kind() + "/" + o.name(), meta: tmpl.ObjectMeta, spec: tmpl.Spec}
		for _, c := range slices.Concat(p.spec.InitContainers, p.spec.Containers) {
			if c.Name == "istio-proxy" {
				p.injected = true
			}
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// apiServerDefaults applies SetDefaults_Volume of k8s.io/kubernetes pkg/apis/core/v1/defaults.go
// (v1.36): "if ptr.AllPtrFieldsNil(&obj.VolumeSource) { obj.VolumeSource = v1.VolumeSource{
// EmptyDir: &v1.EmptyDirVolumeSource{} } }", with the same k8s.io/utils/ptr helper.
func apiServerDefaults(spec *corev1.PodSpec) {
	for i := range spec.Volumes {
		if ptr.AllPtrFieldsNil(&spec.Volumes[i].VolumeSource) {
			spec.Volumes[i].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		}
	}
}

// restrictedViolations evaluates each pod with the PodSecurity admission's checks and returns one
// error per refused pod, worded as the API server words its refusal.
func restrictedViolations(pods []podOf) error {
	ev, err := psaEvaluator()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		r := policy.AggregateCheckResults(ev.EvaluatePod(psaRestricted, &p.meta, &p.spec))
		if !r.Allowed {
			errs = append(errs, fmt.Errorf("%s: violates PodSecurity %q: %s", p.name, psaRestricted.String(), r.ForbiddenDetail()))
		}
	}
	return errors.Join(errs...)
}

// namespacePolicy checks that the rendered Namespace meshdemo enforces, warns and audits at
// restricted/latest, read through the admission plugin's own label parsing.
func namespacePolicy(objs []object) error {
	ns, err := one(objs, "Namespace", namespace)
	if err != nil {
		return err
	}
	privileged := psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()}
	p, ferrs := psaapi.PolicyToEvaluate(stringMap(ns, "metadata", "labels"),
		psaapi.Policy{Enforce: privileged, Warn: privileged, Audit: privileged})
	if len(ferrs) > 0 {
		return fmt.Errorf("namespace %s: Pod Security labels: %v", namespace, ferrs.ToAggregate())
	}
	var errs []error
	for mode, lv := range map[string]psaapi.LevelVersion{"enforce": p.Enforce, "warn": p.Warn, "audit": p.Audit} {
		if lv != psaRestricted {
			errs = append(errs, fmt.Errorf("namespace %s: Pod Security %s is %q, want %q", namespace, mode, lv.String(), psaRestricted.String()))
		}
	}
	return errors.Join(errs...)
}

// psaRender is one rendered kustomization that lands pods in meshdemo.
type psaRender struct {
	dir     string
	flavour matrix.Flavour // the Istio install the pods meet
	objs    []object
}

// psaRenders renders every generated scenario kustomization of every flavour (deploy/scenarios,
// what the kind path applies) and every loadtest kustomization, which runs in meshdemo next to
// them and meets the sidecar flavour's install (the loadtest's Jobs opt out of injection).
func psaRenders(t *testing.T) []psaRender {
	t.Helper()
	mem := loadManifests(t)
	copyTree(t, mem, "loadtest/deploy")
	var out []psaRender
	for _, f := range matrix.Flavours() {
		for _, name := range slices.Concat(matrix.PresetNames(), matrix.ScenarioNames()) {
			dir := matrix.ScenarioDir(f.Profile(name))
			out = append(out, psaRender{dir: dir, flavour: f, objs: kustomizeBuild(t, mem, "/repo/"+dir)})
		}
	}
	for _, dir := range []string{"loadtest/deploy", "loadtest/deploy/live", "loadtest/deploy/scenarios/fault-abort", "loadtest/deploy/scenarios/weighted-split"} {
		out = append(out, psaRender{dir: dir, flavour: matrix.Sidecar, objs: kustomizeBuild(t, mem, "/repo/"+dir)})
	}
	return out
}

// injectorFor is the injector of the flavour's kind install, nil for ambient (no sidecars:
// istio/ambient/dataplane takes the injection label off the namespace).
func injectorFor(t testing.TB, f matrix.Flavour) *injector {
	if !f.Sidecars() {
		return nil
	}
	root := repoRoot(t)
	var files []string
	for _, p := range f.InstallFiles() {
		files = append(files, filepath.Join(root, p))
	}
	inj := kindInjector(t, files)
	return &inj
}

// psaCheck injects and evaluates one render in one sidecar mode.
func psaCheck(r psaRender, inj *injector, native bool) (injected int, err error) {
	if err := namespacePolicy(r.objs); err != nil && !strings.HasPrefix(r.dir, "loadtest/") {
		return 0, err
	}
	pods, err := injectPods(r.objs, inj, native)
	if err != nil {
		return 0, err
	}
	if len(pods) == 0 {
		return 0, fmt.Errorf("%s renders no pod in %s", r.dir, namespace)
	}
	for _, p := range pods {
		if p.injected {
			injected++
		}
	}
	return injected, restrictedViolations(pods)
}

var sidecarModes = []struct {
	name   string
	native bool
}{{"native", true}, {"classic", false}}

// Every pod of every render, as injected on kind in both sidecar modes, passes Pod Security
// restricted, and every scenario's namespace enforces it.
func TestPodSecurity(t *testing.T) {
	renders := psaRenders(t)
	for _, mode := range sidecarModes {
		t.Run(mode.name, func(t *testing.T) {
			total := 0
			for _, r := range renders {
				if !r.flavour.Sidecars() && !mode.native {
					continue // no sidecars: one evaluation is enough
				}
				n, err := psaCheck(r, injectorFor(t, r.flavour), mode.native)
				if err != nil {
					t.Errorf("%s (%s install): %v", r.dir, r.flavour, err)
				}
				// The injector must have done something in the sidecar flavours, or the proof
				// is about pods the cluster never runs.
				if r.flavour.Sidecars() && !strings.HasPrefix(r.dir, "loadtest/") && n == 0 {
					t.Errorf("%s: no pod got an istio-proxy from the injector", r.dir)
				}
				total += n
			}
			t.Logf("%d renders, %d injected pod templates evaluated at %s", len(renders), total, psaRestricted.String())
		})
	}
}

// The checks of TestPodSecurity refuse what `restricted` refuses: each fixture breaks one render
// and the check must fail with the admission's reason.
func TestPodSecurityBrokenFixtures(t *testing.T) {
	renders := psaRenders(t)
	base := func(dir string) psaRender {
		t.Helper()
		for _, r := range renders {
			if r.dir == dir {
				r.objs = cloneObjects(t, r.objs)
				return r
			}
		}
		t.Fatalf("no render %s", dir)
		return psaRender{}
	}
	noCNI := func(t *testing.T) *injector {
		root := repoRoot(t)
		overlay := filepath.Join(t.TempDir(), "no-cni.yaml")
		if err := os.WriteFile(overlay, []byte("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  components:\n    cni:\n      enabled: false\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		inj := kindInjector(t, []string{filepath.Join(root, "istio/sidecar/install.yaml"), overlay})
		return &inj
	}
	tests := []struct {
		name   string
		render string
		inj    func(t *testing.T, f matrix.Flavour) *injector
		mutate func(objs []object) error
		want   []string
	}{
		{name: "CNI disabled: istio-init", render: "deploy/scenarios/default",
			inj:  func(t *testing.T, _ matrix.Flavour) *injector { return noCNI(t) },
			want: []string{`Deployment/client-v1: violates PodSecurity "restricted:latest": unrestricted capabilities (container "istio-init" must not include "NET_ADMIN", "NET_RAW"`, `runAsUser=0 (container "istio-init" must not set runAsUser=0)`}},
		{name: "allowPrivilegeEscalation true", render: "deploy/scenarios/gateway-api-canary",
			mutate: privilegeEscalation("server2-v2"),
			want:   []string{`Deployment/server2-v2: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "server2" must set securityContext.allowPrivilegeEscalation=false)`}},
		{name: "allowPrivilegeEscalation true in ambient", render: "deploy/scenarios/ambient-default",
			mutate: privilegeEscalation("client-v1"),
			want:   []string{`Deployment/client-v1: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false`}},
		{name: "namespace enforce label removed", render: "deploy/scenarios/header-routing",
			mutate: func(objs []object) error {
				ns, err := one(objs, "Namespace", namespace)
				if err != nil {
					return err
				}
				if !deleteIn(ns, "metadata", "labels", psaapi.EnforceLevelLabel) {
					return errNoTarget
				}
				return nil
			},
			want: []string{`namespace meshdemo: Pod Security enforce is "privileged:latest", want "restricted:latest"`}},
	}
	for _, tt := range tests {
		for _, mode := range sidecarModes {
			if strings.Contains(tt.render, "ambient") && !mode.native {
				continue // ambient injects nothing: one mode says it all
			}
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				r := base(tt.render)
				if tt.mutate != nil {
					if err := tt.mutate(r.objs); err != nil {
						t.Fatalf("fixture: %v", err)
					}
				}
				inj := injectorFor(t, r.flavour)
				if tt.inj != nil {
					inj = tt.inj(t, r.flavour)
				}
				_, err := psaCheck(r, inj, mode.native)
				if err == nil {
					t.Fatal("passed on the broken fixture")
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				t.Logf("refused as expected: %v", err)
			})
		}
	}
}

// cloneObjects deep-copies a render so a fixture cannot edit the shared one.
func cloneObjects(t testing.TB, objs []object) []object {
	t.Helper()
	b, err := json.Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	var out []object
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// privilegeEscalation allows privilege escalation in the first container of Deployment name.
func privilegeEscalation(name string) func(objs []object) error {
	return func(objs []object) error {
		d, err := one(objs, "Deployment", name)
		if err != nil {
			return err
		}
		c := listAt(d, "spec", "template", "spec", "containers")[0].(map[string]any)
		setIn(c, true, "securityContext", "allowPrivilegeEscalation")
		return nil
	}
}
