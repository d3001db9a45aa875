package manifests

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// varRef is a Kubernetes dependent environment variable reference, $(NAME); $$ escapes a $.
var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkEnv: what a container's environment refers to exists in the render.
//   - $(NAME) in a value names a variable defined earlier in the same container. Kubernetes
//     expands only those (EnvVar.value, core/v1), and leaves any other reference as literal
//     text: a DATABASE_URL listed before its password would carry the string "$(...)".
//   - secretKeyRef names a rendered Secret holding that key (unless marked optional).
//   - a URL whose host is a Service's full name (<svc>.<ns>.svc.cluster.local) in a namespace
//     the render has Services in names a rendered Service and one of its ports, declared with the protocol the URL speaks (appProtocol http
//     for http URLs, tcp for anything else, such as postgres://), so that istiod does not
//     treat a database connection as HTTP.
//   - GOMEMLIMIT (the Go runtime's soft memory limit) comes from the container's own
//     limits.memory through the downward API, and that limit is set: a literal would drift from
//     the limit, another container's limit (or requests.memory) would let the GC run past the
//     point where the kernel kills this one, and without a limit the downward API hands the
//     node's allocatable memory, which is no limit at all.
func (s *set) checkEnv() []error {
	var errs []error
	for _, w := range s.workloads {
		for _, c := range w.template.Spec.Containers {
			for _, msg := range s.envProblems(c) {
				errs = append(errs, fmt.Errorf("%s: container %s: %s", w.id(), c.Name, msg))
			}
		}
	}
	return errs
}

func (s *set) envProblems(c corev1.Container) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	var defined []string
	for _, e := range c.Env {
		for _, m := range varRef.FindAllStringSubmatch(e.Value, -1) {
			if m[1] != "" && !slices.Contains(defined, m[1]) {
				add("%s refers to $(%s), which is not defined before it (Kubernetes would leave it unexpanded)", e.Name, m[1])
			}
		}
		defined = append(defined, e.Name)
		if ref := secretRef(e); ref != nil && (ref.Optional == nil || !*ref.Optional) {
			sec, ok := s.secrets[ref.Name]
			switch {
			case !ok:
				add("%s reads Secret %q, which is not rendered", e.Name, ref.Name)
			case !secretHasKey(sec, ref.Key):
				add("%s reads key %q of Secret %s, which has no such key", e.Name, ref.Key, ref.Name)
			}
		}
		if msg := s.serviceURLProblem(expandForCheck(e.Value)); msg != "" {
			add("%s: %s", e.Name, msg)
		}
		if e.Name == "GOMEMLIMIT" {
			if msg := memLimitProblem(c, e); msg != "" {
				add("GOMEMLIMIT: %s", msg)
			}
		}
	}
	return p
}

// memLimitProblem checks that GOMEMLIMIT is the container's own memory limit. An empty
// containerName means the container itself (Kubernetes resolves an env var's resourceFieldRef
// against its own container).
func memLimitProblem(c corev1.Container, e corev1.EnvVar) string {
	var ref *corev1.ResourceFieldSelector
	if e.ValueFrom != nil {
		ref = e.ValueFrom.ResourceFieldRef
	}
	switch {
	case ref == nil:
		return "must come from the container's limits.memory (valueFrom.resourceFieldRef), not a fixed value"
	case ref.Resource != "limits.memory":
		return fmt.Sprintf("resourceFieldRef reads %s, want limits.memory", ref.Resource)
	case ref.ContainerName != "" && ref.ContainerName != c.Name:
		return fmt.Sprintf("resourceFieldRef reads container %s, want its own (%s)", ref.ContainerName, c.Name)
	case ref.Divisor.Sign() != 0 && ref.Divisor.Value() != 1:
		return fmt.Sprintf("resourceFieldRef divisor %s: GOMEMLIMIT is in bytes (divisor 1)", ref.Divisor.String())
	}
	if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.IsZero() {
		return "the container sets no limits.memory (the downward API would hand the node's allocatable memory)"
	}
	return ""
}

func secretRef(e corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

func secretHasKey(sec *corev1.Secret, key string) bool {
	_, inData := sec.Data[key]
	_, inString := sec.StringData[key]
	return inData || inString
}

// expandForCheck replaces references by a neutral word, so that a URL with $(PASSWORD) in its
// user info still parses; only the host and port matter here.
func expandForCheck(v string) string {
	return varRef.ReplaceAllStringFunc(v, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return "x"
	})
}

// serviceURLProblem checks a value that is a URL naming a Service by its full name.
func (s *set) serviceURLProblem(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || !strings.HasSuffix(u.Hostname(), "."+clusterDomain) {
		return ""
	}
	svc, ok := s.services[u.Hostname()]
	if !ok {
		// A namespace the render puts no Service in is somebody else's (Istio's addons in
		// istio-system): verify/cli's tracing test checks those URLs against the addon
		// manifests of the pinned Istio.
		if ns := strings.Split(u.Hostname(), ".")[1]; !s.hasServicesIn(ns) {
			return ""
		}
		return fmt.Sprintf("URL host %s is not a rendered Service", u.Hostname())
	}
	port := u.Port()
	if port == "" {
		return fmt.Sprintf("URL %s://%s names no port", u.Scheme, u.Host)
	}
	wantProto := "tcp"
	if u.Scheme == "http" {
		wantProto = "http"
	}
	for _, sp := range svc.Spec.Ports {
		if fmt.Sprint(sp.Port) != port {
			continue
		}
		if sp.AppProtocol == nil || *sp.AppProtocol != wantProto {
			return fmt.Sprintf("Service %s port %s has appProtocol %v, want %s for a %s URL", svc.Name, port, deref(sp.AppProtocol), wantProto, u.Scheme)
		}
		return ""
	}
	return fmt.Sprintf("URL port %s is not a port of Service %s", port, svc.Name)
}

// hasServicesIn says whether the render holds a Service in namespace ns.
func (s *set) hasServicesIn(ns string) bool {
	for host := range s.services {
		if strings.Split(host, ".")[1] == ns {
			return true
		}
	}
	return false
}

func deref(p *string) string {
	if p == nil {
		return "(none)"
	}
	return *p
}
