package manifests

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Drain budget of the workloads (contract: DRAIN_DELAY 5s + SHUTDOWN_TIMEOUT 10s).
const drainBudgetSeconds = 15

// checkPods: the pod conventions of the issue, for every Deployment (v1 and v2 alike).
func (s *set) checkPods() []error {
	var errs []error
	for _, d := range s.deployments {
		for _, msg := range podProblems(d) {
			errs = append(errs, fmt.Errorf("Deployment %s: %s", d.Name, msg))
		}
	}
	return errs
}

func podProblems(d *appsv1.Deployment) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	t := d.Spec.Template
	for _, k := range []string{"app", "version", "app.kubernetes.io/name", "app.kubernetes.io/version", "app.kubernetes.io/part-of"} {
		if t.Labels[k] == "" {
			add("pod label %s missing", k)
		}
	}
	if d.Labels["version"] != t.Labels["version"] || d.Spec.Selector == nil || d.Spec.Selector.MatchLabels["version"] != t.Labels["version"] {
		add("version label differs between Deployment, selector and pod template")
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
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			add("capabilities must drop ALL")
		}
	}
	probe := func(name string, pr *corev1.Probe, path string) {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != path {
			add("%s must be an httpGet probe on %s", name, path)
		}
	}
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	probe("livenessProbe", c.LivenessProbe, "/healthz")
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
		if req.IsZero() || lim.IsZero() {
			add("%s request and limit must both be set", r)
		}
	}
	if m := c.Resources.Requests[corev1.ResourceMemory]; m.Cmp(mustQuantity("128Mi")) > 0 {
		add("memory request %s is too big for a laptop kind cluster (<= 128Mi)", m.String())
	}
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

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
