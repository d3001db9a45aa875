package manifests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/meshdemo/meshdemo/deploy/matrix"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Drain budget of the workloads (contract: DRAIN_DELAY 5s + SHUTDOWN_TIMEOUT 10s).
const drainBudgetSeconds = 15

// imagePrefix marks meshdemo's own images (meshdemo/<workload>); every other image is a
// third-party backing service (PostgreSQL), with conventions of its own.
const imagePrefix = matrix.LocalImagePrefix

// workload is a pod template with its controller: a Deployment (meshdemo's workloads) or a
// StatefulSet (PostgreSQL).
type workload struct {
	kind, name string
	labels     map[string]string // the controller's own labels
	selector   map[string]string // spec.selector.matchLabels
	replicas   int32             // spec.replicas, 1 when unset (the API server's default)
	template   corev1.PodTemplateSpec
}

func (w workload) id() string { return w.kind + " " + w.name }

func deploymentWorkload(d *appsv1.Deployment) workload {
	w := workload{kind: "Deployment", name: d.Name, labels: d.Labels, replicas: replicas(d.Spec.Replicas), template: d.Spec.Template}
	if d.Spec.Selector != nil {
		w.selector = d.Spec.Selector.MatchLabels
	}
	return w
}

func statefulSetWorkload(s *appsv1.StatefulSet) workload {
	w := workload{kind: "StatefulSet", name: s.Name, labels: s.Labels, replicas: replicas(s.Spec.Replicas), template: s.Spec.Template}
	if s.Spec.Selector != nil {
		w.selector = s.Spec.Selector.MatchLabels
	}
	return w
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// ownImage reports whether the pod runs one of meshdemo's binaries (docs/contract.md applies):
// an image under its local name meshdemo/<name>, or, in a release bundle, under the release's
// registry.
func (s *set) ownImage(w workload) bool {
	cs := w.template.Spec.Containers
	return len(cs) > 0 && (strings.HasPrefix(cs[0].Image, imagePrefix) || s.releasedImage(cs[0].Image) != nil)
}

// releasedImage is the image of the release (Options.Release) whose repository ref names, by
// digest or tag, or nil.
func (s *set) releasedImage(ref string) *matrix.ReleasedImage {
	if s.release == nil {
		return nil
	}
	repo := repository(ref)
	for i, im := range s.release.Images {
		if im.Repository == repo {
			return &s.release.Images[i]
		}
	}
	return nil
}

// repository is an image reference without its digest or tag (a port in the host is not a tag).
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// checkImages, for a release bundle: every container that runs a meshdemo image (by its local
// name or under the release's registry) names exactly the release's image by digest,
// <repository>@sha256:<hex>; no container, meshdemo's or not, has imagePullPolicy Never (no
// node of another cluster has images loaded by hand).
func (s *set) checkImages() []error {
	var errs []error
	for _, w := range s.workloads {
		spec := w.template.Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			if c.ImagePullPolicy == corev1.PullNever {
				errs = append(errs, fmt.Errorf("%s: container %s: imagePullPolicy Never: a bundle is for any cluster, whose nodes pull", w.id(), c.Name))
			}
			im := s.releasedImage(c.Image)
			switch {
			case strings.HasPrefix(c.Image, imagePrefix):
				errs = append(errs, fmt.Errorf("%s: container %s: image %q is a local name, not the release's %s", w.id(), c.Name, c.Image, s.release.Registry))
			case im != nil && c.Image != im.Ref():
				errs = append(errs, fmt.Errorf("%s: container %s: image %q, want the release's %s", w.id(), c.Name, c.Image, im.Ref()))
			}
		}
	}
	return errs
}

// checkPods: the pod conventions of the issue. Every pod, meshdemo's or not, meets the Pod
// Security Standard "restricted" (plus a read-only root file system, resources and its own
// service account); meshdemo's own workloads also follow the contract (ports, probes, version).
func (s *set) checkPods() []error {
	var errs []error
	for _, w := range s.workloads {
		problems := securityProblems(w)
		if s.ownImage(w) {
			problems = append(problems, contractProblems(w)...)
		} else {
			problems = append(problems, backingServiceProblems(w)...)
		}
		for _, msg := range problems {
			errs = append(errs, fmt.Errorf("%s: %s", w.id(), msg))
		}
	}
	return errs
}

// securityProblems: what every pod of meshdemo must satisfy, whatever it runs.
func securityProblems(w workload) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	t := w.template
	for _, k := range []string{"app", "app.kubernetes.io/name", "app.kubernetes.io/part-of"} {
		if t.Labels[k] == "" {
			add("pod label %s missing", k)
		}
	}
	ps := t.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
		add("pod securityContext.runAsNonRoot must be true")
	}
	if ps == nil || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		add("pod seccompProfile must be RuntimeDefault")
	}
	if t.Spec.ServiceAccountName != t.Labels["app"] {
		add("serviceAccountName %q, want the workload's own %q", t.Spec.ServiceAccountName, t.Labels["app"])
	}
	if len(t.Spec.Containers) != 1 {
		add("want exactly one container, have %d", len(t.Spec.Containers))
		return p
	}
	c := t.Spec.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		add("container securityContext missing")
	default:
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			add("allowPrivilegeEscalation must be false")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			add("readOnlyRootFilesystem must be true")
		}
		if sc.Privileged != nil && *sc.Privileged {
			add("privileged must not be true")
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
			add("capabilities must drop ALL and add none")
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			add("container runAsUser must not be 0")
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
		if req.IsZero() || lim.IsZero() {
			add("%s request and limit must both be set", r)
		}
	}
	if m := c.Resources.Requests[corev1.ResourceMemory]; m.Cmp(mustQuantity("128Mi")) > 0 {
		add("memory request %s is too big for a laptop kind cluster (<= 128Mi)", m.String())
	}
	return p
}

// contractProblems: docs/contract.md for meshdemo's own binaries.
func contractProblems(w workload) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	t := w.template
	for _, k := range []string{"version", "app.kubernetes.io/version"} {
		if t.Labels[k] == "" {
			add("pod label %s missing", k)
		}
	}
	if w.labels["version"] != t.Labels["version"] || w.selector["version"] != t.Labels["version"] {
		add("version label differs between %s, selector and pod template", w.kind)
	}
	if g := t.Spec.TerminationGracePeriodSeconds; g == nil || *g <= drainBudgetSeconds {
		add("terminationGracePeriodSeconds must exceed the drain budget of %ds", drainBudgetSeconds)
	}
	var pc struct {
		Hold bool `json:"holdApplicationUntilProxyStarts"`
	}
	if err := json.Unmarshal([]byte(t.Annotations["proxy.istio.io/config"]), &pc); err != nil || !pc.Hold {
		add(`annotation proxy.istio.io/config must hold {"holdApplicationUntilProxyStarts": true}`)
	}
	if t.Annotations["prometheus.io/scrape"] != "true" || t.Annotations["prometheus.io/port"] != "9090" {
		add("Prometheus scrape annotations for the admin port 9090 missing")
	}
	if len(t.Spec.Containers) != 1 {
		return p // reported by securityProblems
	}
	c := t.Spec.Containers[0]
	probe := func(name string, pr *corev1.Probe, path string) {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != path {
			add("%s must be an httpGet probe on %s", name, path)
		}
	}
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	probe("livenessProbe", c.LivenessProbe, "/healthz")
	ports := map[string]int32{}
	for _, cp := range c.Ports {
		ports[cp.Name] = cp.ContainerPort
	}
	if ports["http"] != 8080 || ports["http-admin"] != 9090 {
		add("container ports must be http:8080 and http-admin:9090, have %v", ports)
	}
	versionFromLabel := false
	for _, e := range c.Env {
		if e.Name == "SERVICE_VERSION" {
			versionFromLabel = e.Value == "" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
				e.ValueFrom.FieldRef.FieldPath == "metadata.labels['version']"
		}
	}
	if !versionFromLabel {
		add("SERVICE_VERSION must come from the pod label version through the downward API")
	}
	return p
}

// pinnedTag is an image reference with an explicit tag other than latest (a digest also pins).
var pinnedTag = regexp.MustCompile(`^[^@]+:[A-Za-z0-9_][A-Za-z0-9_.-]*$|@sha256:[0-9a-f]{64}$`)

// backingServiceProblems: a third-party image (PostgreSQL) has none of meshdemo's endpoints,
// but it is pinned, and it says when it is ready, so that callers are not routed to it early.
func backingServiceProblems(w workload) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if len(w.template.Spec.Containers) != 1 {
		return p // reported by securityProblems
	}
	c := w.template.Spec.Containers[0]
	if !pinnedTag.MatchString(c.Image) || strings.HasSuffix(c.Image, ":latest") {
		add("image %q must be pinned by a tag other than latest (or a digest)", c.Image)
	}
	if c.ReadinessProbe == nil {
		add("readinessProbe missing")
	}
	return p
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
