package manifests

import (
	"fmt"
	"github.com/meshdemo/meshdemo/deploy/matrix"
	"slices"
	"strings"
	"time"

	networking "istio.io/api/networking/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The rules of the Gateway API flavours (gateway-api, ambient), and the ones that hold for every
// flavour once Gateway API objects can appear in a render: references resolve, weights add up,
// no host is routed by two APIs.

const (
	gatewayGroup = gatewayv1.GroupName // gateway.networking.k8s.io
	// ingressClass is the GatewayClass of Istio's ingress gateways, waypointClass of its waypoints
	// (both built into istiod).
	ingressClass  = "istio"
	waypointClass = "istio-waypoint"
	// The labels of ambient mode (istio.io/api label package).
	dataplaneModeLabel = "istio.io/dataplane-mode"
	useWaypointLabel   = "istio.io/use-waypoint"
	waypointForLabel   = "istio.io/waypoint-for"
	// hboneProtocol and hbonePort are a waypoint's listener (what `istioctl waypoint generate` writes).
	hboneProtocol = "HBONE"
	hbonePort     = 15008
	// metadataNameLabel is the label the API server puts on every Namespace (its name): what a
	// Gateway's allowedRoutes selector usually matches.
	metadataNameLabel = "kubernetes.io/metadata.name"
)

// route is an HTTPRoute or GRPCRoute reduced to what the rules need.
type route struct {
	obj       Object
	parents   []gatewayv1.ParentReference
	hostnames []gatewayv1.Hostname
	rules     []routeRule
	grpc      bool
	namespace string
	httpRoute *gatewayv1.HTTPRoute // nil for a GRPCRoute
}

type routeRule struct {
	name     string
	backends []gatewayv1.BackendRef
	// mirrors are the backendRefs of RequestMirror filters, on the rule or on a backend.
	mirrors []gatewayv1.BackendObjectReference
}

func (r route) id() string { return r.obj.ID() }

func (rr routeRule) label(i int) string { return fmt.Sprintf("rule %d (%q)", i, rr.name) }

func newRoute(o Object) (route, bool) {
	switch t := o.Typed.(type) {
	case *gatewayv1.HTTPRoute:
		r := route{obj: o, parents: t.Spec.ParentRefs, hostnames: t.Spec.Hostnames, namespace: t.Namespace, httpRoute: t}
		for _, rule := range t.Spec.Rules {
			r.rules = append(r.rules, newRouteRule(rule.Name, rule.Filters, rule.BackendRefs,
				func(f gatewayv1.HTTPRouteFilter) *gatewayv1.HTTPRequestMirrorFilter { return f.RequestMirror },
				func(b gatewayv1.HTTPBackendRef) (gatewayv1.BackendRef, []gatewayv1.HTTPRouteFilter) {
					return b.BackendRef, b.Filters
				}))
		}
		return r, true
	case *gatewayv1.GRPCRoute:
		r := route{obj: o, parents: t.Spec.ParentRefs, hostnames: t.Spec.Hostnames, namespace: t.Namespace, grpc: true}
		for _, rule := range t.Spec.Rules {
			r.rules = append(r.rules, newRouteRule(rule.Name, rule.Filters, rule.BackendRefs,
				func(f gatewayv1.GRPCRouteFilter) *gatewayv1.HTTPRequestMirrorFilter { return f.RequestMirror },
				func(b gatewayv1.GRPCBackendRef) (gatewayv1.BackendRef, []gatewayv1.GRPCRouteFilter) {
					return b.BackendRef, b.Filters
				}))
		}
		return r, true
	}
	return route{}, false
}

// newRouteRule collects a rule's backends and the mirror backends of its filters and of its
// backends' filters, for HTTPRoute and GRPCRoute alike (their filter types differ).
func newRouteRule[F, B any](name *gatewayv1.SectionName, filters []F, backends []B,
	mirror func(F) *gatewayv1.HTTPRequestMirrorFilter, backend func(B) (gatewayv1.BackendRef, []F)) routeRule {
	rr := routeRule{name: sectionName(name)}
	addMirrors := func(fs []F) {
		for _, f := range fs {
			if m := mirror(f); m != nil {
				rr.mirrors = append(rr.mirrors, m.BackendRef)
			}
		}
	}
	addMirrors(filters)
	for _, b := range backends {
		ref, fs := backend(b)
		rr.backends = append(rr.backends, ref)
		addMirrors(fs)
	}
	return rr
}

func sectionName(n *gatewayv1.SectionName) string {
	if n == nil {
		return ""
	}
	return string(*n)
}

func orDefault[T ~string](p *T, def string) string {
	if p == nil || *p == "" {
		return def
	}
	return string(*p)
}

// parentKind is a parentRef's group/kind with the API's defaults (gateway.networking.k8s.io/Gateway).
func parentKind(p gatewayv1.ParentReference) (group, kind string) {
	group = gatewayGroup
	if p.Group != nil {
		group = string(*p.Group)
	}
	return group, orDefault(p.Kind, "Gateway")
}

// backendKind is a backendRef's group/kind with the API's defaults (core Service).
func backendKind(b gatewayv1.BackendObjectReference) (group, kind string) {
	return orDefault(b.Group, ""), orDefault(b.Kind, "Service")
}

// service is the rendered Service namespace/name, or nil.
func (s *set) service(namespace, name string) *corev1.Service {
	return s.services[fqdn(namespace, name)]
}

func servicePort(svc *corev1.Service, port int32) *corev1.ServicePort {
	for i, p := range svc.Spec.Ports {
		if p.Port == port {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

// checkNoIstioRouting: the Gateway API flavours route with the Gateway API only. A VirtualService
// or an Istio Gateway in them would be a second, competing source of routes.
func (s *set) checkNoIstioRouting(f matrix.Flavour) []error {
	if !f.GatewayAPIRoutes() {
		return nil
	}
	var errs []error
	for _, o := range s.all {
		if o.Kind == "VirtualService" || (o.Kind == "Gateway" && strings.HasPrefix(o.APIVersion, "networking.istio.io/")) {
			errs = append(errs, fmt.Errorf("%s: the %s flavour routes with the Gateway API only (no VirtualService, no networking.istio.io Gateway)", o.ID(), f))
		}
	}
	return errs
}

// routeHosts are the hosts a Gateway API route serves: the Service of each Service parent
// (GAMMA), and its hostnames (or its listeners' hostname) on each Gateway parent.
func (s *set) routeHosts(r route) []string {
	var hosts []string
	for _, p := range r.parents {
		group, kind := parentKind(p)
		ns := orDefault(p.Namespace, r.namespace)
		switch {
		case group == "" && kind == "Service":
			hosts = append(hosts, fqdn(ns, p.Name))
		case group == gatewayGroup && kind == "Gateway":
			if len(r.hostnames) > 0 {
				for _, h := range r.hostnames {
					hosts = append(hosts, string(h))
				}
				continue
			}
			if gw := s.kgateways[ns+"/"+string(p.Name)]; gw != nil {
				for _, l := range gw.Spec.Listeners {
					if l.Hostname != nil && (p.SectionName == nil || *p.SectionName == l.Name) {
						hosts = append(hosts, string(*l.Hostname))
					}
				}
			}
		}
	}
	return hosts
}

// checkRouteHostConflicts: a host is routed by VirtualServices or by Gateway API routes, never
// both: Istio would pick one source for the host and silently ignore the other's routes.
func (s *set) checkRouteHostConflicts() []error {
	var errs []error
	vsHosts := map[string]string{}
	for _, o := range s.vs {
		for _, h := range o.Typed.(*networking.VirtualService).GetHosts() {
			vsHosts[h] = o.ID()
		}
	}
	for _, r := range s.routes {
		for _, h := range s.routeHosts(r) {
			if vs, ok := vsHosts[h]; ok {
				errs = append(errs, fmt.Errorf("%s: host %q is also routed by %s: a VirtualService and an HTTPRoute/GRPCRoute for the same host", r.id(), h, vs))
			}
		}
	}
	return errs
}

// checkBackendWeights: when a rule has several backends or gives a weight, the weights sum to
// 100, so each weight reads as the percentage it is (an unset weight counts 1, the API's default).
func (s *set) checkBackendWeights() []error {
	var errs []error
	for _, r := range s.routes {
		for i, rr := range r.rules {
			var sum int32
			given := false
			for _, b := range rr.backends {
				if b.Weight != nil {
					given = true
					sum += *b.Weight
				} else {
					sum++
				}
			}
			if (given || len(rr.backends) > 1) && sum != 100 {
				errs = append(errs, fmt.Errorf("%s: %s: backendRef weights sum to %d, not 100", r.id(), rr.label(i), sum))
			}
		}
	}
	return errs
}

// checkPathMatches: every rule of an HTTPRoute has matches and every match spells out its path,
// type and value. The API server defaults a missing match to PathPrefix /, but istiod's offline
// harness (verify/pilot) has no API server, and istiod's conversion needs the path.
func (s *set) checkPathMatches() []error {
	var errs []error
	for _, r := range s.routes {
		if r.httpRoute == nil {
			continue
		}
		for i, rule := range r.httpRoute.Spec.Rules {
			label := routeRule{name: sectionName(rule.Name)}.label(i)
			if len(rule.Matches) == 0 {
				errs = append(errs, fmt.Errorf("%s: %s has no match: spell out its path match (the API server's default is not applied offline)", r.id(), label))
			}
			for j, m := range rule.Matches {
				if m.Path == nil || m.Path.Type == nil || m.Path.Value == nil {
					errs = append(errs, fmt.Errorf("%s: %s: match %d does not spell out its path (type and value)", r.id(), label, j))
				}
			}
		}
	}
	return errs
}

// checkGatewayAPIRefs: every reference of a Gateway API object resolves to an object of the
// render: parentRefs (a Gateway and its listener, which admits the route's namespace and kind;
// or a Service and its port), backendRefs and RequestMirror backendRefs (a Service and its
// port, in the route's namespace: meshdemo renders no ReferenceGrant), and a Gateway's
// infrastructure parameters (a ConfigMap in its namespace).
func (s *set) checkGatewayAPIRefs() []error {
	var errs []error
	for _, r := range s.routes {
		if len(r.parents) == 0 {
			errs = append(errs, fmt.Errorf("%s: no parentRefs: the route applies nowhere", r.id()))
		}
		for _, p := range r.parents {
			if msg := s.parentProblem(r, p); msg != "" {
				errs = append(errs, fmt.Errorf("%s: parentRef %s: %s", r.id(), p.Name, msg))
			}
		}
		for i, rr := range r.rules {
			if len(rr.backends) == 0 {
				errs = append(errs, fmt.Errorf("%s: %s has no backendRefs", r.id(), rr.label(i)))
			}
			for _, b := range rr.backends {
				if msg := s.backendProblem(r, b.BackendObjectReference); msg != "" {
					errs = append(errs, fmt.Errorf("%s: %s: backendRef %s: %s", r.id(), rr.label(i), b.Name, msg))
				}
			}
			for _, m := range rr.mirrors {
				if msg := s.backendProblem(r, m); msg != "" {
					errs = append(errs, fmt.Errorf("%s: %s: RequestMirror backendRef %s: %s", r.id(), rr.label(i), m.Name, msg))
				}
			}
		}
	}
	for key, gw := range s.kgateways {
		if gw.Spec.Infrastructure == nil || gw.Spec.Infrastructure.ParametersRef == nil {
			continue
		}
		ref := gw.Spec.Infrastructure.ParametersRef
		if _, ok := s.configMaps[gw.Namespace+"/"+ref.Name]; !ok {
			errs = append(errs, fmt.Errorf("Gateway %s: infrastructure.parametersRef ConfigMap %s/%s is not rendered", key, gw.Namespace, ref.Name))
		}
	}
	return errs
}

func (s *set) parentProblem(r route, p gatewayv1.ParentReference) string {
	group, kind := parentKind(p)
	ns := orDefault(p.Namespace, r.namespace)
	switch {
	case group == "" && kind == "Service":
		svc := s.service(ns, string(p.Name))
		if svc == nil {
			return fmt.Sprintf("Service %s/%s is not rendered", ns, p.Name)
		}
		if p.Port != nil && servicePort(svc, *p.Port) == nil {
			return fmt.Sprintf("port %d is not a port of Service %s/%s", *p.Port, ns, p.Name)
		}
		if p.SectionName != nil {
			return "a Service parent takes a port, not a sectionName"
		}
		return ""
	case group == gatewayGroup && kind == "Gateway":
		gw := s.kgateways[ns+"/"+string(p.Name)]
		if gw == nil {
			return fmt.Sprintf("Gateway %s/%s is not rendered", ns, p.Name)
		}
		var listeners []gatewayv1.Listener
		for _, l := range gw.Spec.Listeners {
			if (p.SectionName == nil || *p.SectionName == l.Name) && (p.Port == nil || *p.Port == l.Port) {
				listeners = append(listeners, l)
			}
		}
		if len(listeners) == 0 {
			return fmt.Sprintf("Gateway %s/%s has no listener named %q (port %v)", ns, p.Name, sectionName(p.SectionName), deref32(p.Port))
		}
		var why []string
		for _, l := range listeners {
			msg := s.listenerAdmits(gw, l, r)
			if msg == "" {
				return ""
			}
			why = append(why, fmt.Sprintf("listener %s: %s", l.Name, msg))
		}
		return strings.Join(why, "; ")
	default:
		return fmt.Sprintf("parent kind %s/%s: meshdemo binds routes to Gateways and Services only", group, kind)
	}
}

func deref32(p *gatewayv1.PortNumber) string {
	if p == nil {
		return "any"
	}
	return fmt.Sprint(*p)
}

// listenerAdmits explains why a listener does not accept the route ("" if it does):
// allowedRoutes.namespaces (Same by default; a Selector is matched against the route's rendered
// Namespace with the label the API server adds, kubernetes.io/metadata.name), allowedRoutes.kinds
// (by default what the listener's protocol carries), and the hostnames.
func (s *set) listenerAdmits(gw *gatewayv1.Gateway, l gatewayv1.Listener, r route) string {
	from := gatewayv1.NamespacesFromSame
	var selector *metav1.LabelSelector
	var kinds []gatewayv1.RouteGroupKind
	if l.AllowedRoutes != nil {
		if n := l.AllowedRoutes.Namespaces; n != nil {
			if n.From != nil {
				from = *n.From
			}
			selector = n.Selector
		}
		kinds = l.AllowedRoutes.Kinds
	}
	switch from {
	case gatewayv1.NamespacesFromSame:
		if r.namespace != gw.Namespace {
			return fmt.Sprintf("admits routes from its own namespace %s only, the route is in %s", gw.Namespace, r.namespace)
		}
	case gatewayv1.NamespacesFromSelector:
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil || selector == nil {
			return fmt.Sprintf("allowedRoutes namespace selector: %v", err)
		}
		nsLabels := labels.Set{metadataNameLabel: r.namespace}
		for _, ns := range s.namespaces {
			if ns.Name == r.namespace {
				for k, v := range ns.Labels {
					nsLabels[k] = v
				}
			}
		}
		if !sel.Matches(nsLabels) {
			return fmt.Sprintf("its namespace selector %s does not match namespace %s (labels %v)", sel, r.namespace, nsLabels)
		}
	case gatewayv1.NamespacesFromAll:
	default:
		return fmt.Sprintf("allowedRoutes from %q is not supported here", from)
	}
	kind := "HTTPRoute"
	if r.grpc {
		kind = "GRPCRoute"
	}
	if len(kinds) == 0 {
		switch l.Protocol {
		case gatewayv1.HTTPProtocolType, gatewayv1.HTTPSProtocolType:
			kinds = []gatewayv1.RouteGroupKind{{Kind: "HTTPRoute"}, {Kind: "GRPCRoute"}}
		}
	}
	if !slices.ContainsFunc(kinds, func(k gatewayv1.RouteGroupKind) bool {
		return orDefault(k.Group, gatewayGroup) == gatewayGroup && string(k.Kind) == kind
	}) {
		return fmt.Sprintf("allowedRoutes kinds %v do not include %s", routeKinds(kinds), kind)
	}
	if l.Hostname != nil && len(r.hostnames) > 0 && !slices.ContainsFunc(r.hostnames, func(h gatewayv1.Hostname) bool {
		return hostnamesIntersect(string(h), string(*l.Hostname))
	}) {
		return fmt.Sprintf("hostname %s matches none of the route's hostnames %v", *l.Hostname, r.hostnames)
	}
	return ""
}

func routeKinds(kinds []gatewayv1.RouteGroupKind) []string {
	var out []string
	for _, k := range kinds {
		out = append(out, orDefault(k.Group, gatewayGroup)+"/"+string(k.Kind))
	}
	return out
}

// hostnamesIntersect: equal, or one is a wildcard (*.example.com) the other falls under.
func hostnamesIntersect(a, b string) bool {
	if a == b {
		return true
	}
	under := func(w, h string) bool {
		return strings.HasPrefix(w, "*.") && strings.HasSuffix(h, w[1:]) && len(h) > len(w)-1
	}
	return under(a, b) || under(b, a)
}

func (s *set) backendProblem(r route, b gatewayv1.BackendObjectReference) string {
	group, kind := backendKind(b)
	if group != "" || kind != "Service" {
		return fmt.Sprintf("backend kind %s/%s: meshdemo's backends are Services", group, kind)
	}
	ns := orDefault(b.Namespace, r.namespace)
	if ns != r.namespace {
		return fmt.Sprintf("Service in namespace %s needs a ReferenceGrant there, and meshdemo renders none", ns)
	}
	svc := s.service(ns, string(b.Name))
	if svc == nil {
		return fmt.Sprintf("Service %s/%s is not rendered", ns, b.Name)
	}
	if b.Port == nil {
		return "no port (a Service backend needs one)"
	}
	sp := servicePort(svc, *b.Port)
	if sp == nil {
		return fmt.Sprintf("port %d is not a port of Service %s/%s", *b.Port, ns, b.Name)
	}
	// The port speaks what the route carries: Istio picks the protocol from appProtocol (or the
	// name's prefix), and an HTTPRoute to a gRPC port, or a GRPCRoute to an HTTP/1 port, would
	// reach the wrong server.
	proto := sp.Name
	if sp.AppProtocol != nil {
		proto = *sp.AppProtocol
	}
	proto, _, _ = strings.Cut(proto, "-")
	if r.grpc && proto != "grpc" {
		return fmt.Sprintf("port %d of Service %s/%s is %q, a GRPCRoute needs a grpc port", *b.Port, ns, b.Name, proto)
	}
	if !r.grpc && proto != "http" && proto != "http2" {
		return fmt.Sprintf("port %d of Service %s/%s is %q, an HTTPRoute needs an http port", *b.Port, ns, b.Name, proto)
	}
	return ""
}

// targetReferrer is an Istio policy that can attach to a Gateway or a Service (targetRefs).
type targetReferrer interface {
	GetTargetRefs() []*typev1beta1.PolicyTargetReference
}

type singleTargetReferrer interface {
	GetTargetRef() *typev1beta1.PolicyTargetReference
}

// checkTargetRefs: the targetRefs of AuthorizationPolicies, Telemetries and EnvoyFilters name a
// Gateway (gateway.networking.k8s.io) or a Service of the render, in the policy's own namespace
// (Istio supports no other). withoutCanary: see Options.WithoutCanary.
func (s *set) checkTargetRefs(withoutCanary bool) []error {
	var errs []error
	for _, o := range s.all {
		var refs []*typev1beta1.PolicyTargetReference
		if t, ok := o.Typed.(targetReferrer); ok {
			refs = append(refs, t.GetTargetRefs()...)
		}
		if t, ok := o.Typed.(singleTargetReferrer); ok && t.GetTargetRef() != nil {
			refs = append(refs, t.GetTargetRef())
		}
		for _, ref := range refs {
			if ref.GetNamespace() != "" && ref.GetNamespace() != o.Meta.Namespace {
				errs = append(errs, fmt.Errorf("%s: targetRef %s in namespace %s: Istio resolves targetRefs in the policy's namespace only", o.ID(), ref.GetName(), ref.GetNamespace()))
				continue
			}
			switch {
			case ref.GetGroup() == gatewayGroup && ref.GetKind() == "Gateway":
				if s.kgateways[o.Meta.Namespace+"/"+ref.GetName()] == nil {
					errs = append(errs, fmt.Errorf("%s: targetRef Gateway %s/%s is not rendered", o.ID(), o.Meta.Namespace, ref.GetName()))
				}
			case ref.GetGroup() == "" && ref.GetKind() == "Service":
				if s.service(o.Meta.Namespace, ref.GetName()) == nil && !withoutCanary {
					errs = append(errs, fmt.Errorf("%s: targetRef Service %s/%s is not rendered", o.ID(), o.Meta.Namespace, ref.GetName()))
				}
			default:
				errs = append(errs, fmt.Errorf("%s: targetRef %s/%s %s: meshdemo targets Gateways and Services only", o.ID(), ref.GetGroup(), ref.GetKind(), ref.GetName()))
			}
		}
	}
	return errs
}

// checkIngress: the Gateway API flavours' ingress. Each host of an ingress Gateway (class istio)
// is routed by exactly one HTTPRoute bound to it; the HTTPRoute `client` serves GatewayHost from
// such a Gateway with a request timeout (as the sidecar flavour's VirtualService does); and, on
// kind, the Gateway's Service is pinned to a node port the kind cluster publishes on the host
// (kind has no load balancer): its parameters' `service` overlay is a NodePort Service whose port
// for every listener has one of publishedNodePorts. On any other cluster (s.anyCluster: pilot's
// form, the release bundles) the Service keeps Istio's default type, and no overlay pins a node
// port.
func (s *set) checkIngress(publishedNodePorts []int32) []error {
	var errs []error
	ingress := 0
	for key, gw := range s.kgateways {
		if gw.Spec.GatewayClassName != ingressClass {
			continue
		}
		ingress++
		for _, l := range gw.Spec.Listeners {
			if l.Hostname == nil {
				continue
			}
			n := 0
			for _, r := range s.routes {
				if r.httpRoute != nil && s.bindsListener(r, gw, l) &&
					(len(r.hostnames) == 0 || slices.Contains(r.hostnames, *l.Hostname)) {
					n++
				}
			}
			if n != 1 {
				errs = append(errs, fmt.Errorf("Gateway %s: host %q of listener %s is routed by %d HTTPRoutes bound to it, want 1", key, *l.Hostname, l.Name, n))
			}
		}
		if s.anyCluster {
			errs = append(errs, s.ingressDefaultServiceProblems(key, gw)...)
		} else {
			errs = append(errs, s.ingressNodePortProblems(key, gw, publishedNodePorts)...)
		}
	}
	if ingress == 0 {
		errs = append(errs, fmt.Errorf("no Gateway of class %s (the ingress) is rendered", ingressClass))
	}
	var client *route
	for i, r := range s.routes {
		if r.httpRoute != nil && r.obj.Meta.Name == "client" && r.namespace == Namespace {
			client = &s.routes[i]
		}
	}
	if client == nil {
		return append(errs, fmt.Errorf("HTTPRoute %s/client is not rendered", Namespace))
	}
	if !slices.Contains(client.hostnames, GatewayHost) {
		errs = append(errs, fmt.Errorf("%s: hostname %q missing", client.id(), GatewayHost))
	}
	bound := false
	for _, gw := range s.kgateways {
		for _, l := range gw.Spec.Listeners {
			bound = bound || (gw.Spec.GatewayClassName == ingressClass && s.bindsListener(*client, gw, l))
		}
	}
	if !bound {
		errs = append(errs, fmt.Errorf("%s: not bound to an ingress Gateway (class %s)", client.id(), ingressClass))
	}
	for i, rule := range client.httpRoute.Spec.Rules {
		var d time.Duration
		if rule.Timeouts != nil && rule.Timeouts.Request != nil {
			d, _ = time.ParseDuration(string(*rule.Timeouts.Request))
		}
		if d <= 0 || d > 30*time.Second {
			errs = append(errs, fmt.Errorf("%s: %s needs timeouts.request (0 < t <= 30s)", client.id(), routeRule{name: sectionName(rule.Name)}.label(i)))
		}
	}
	return errs
}

// bindsListener: one of the route's parentRefs names this Gateway and listener, and the listener admits it.
func (s *set) bindsListener(r route, gw *gatewayv1.Gateway, l gatewayv1.Listener) bool {
	for _, p := range r.parents {
		group, kind := parentKind(p)
		if group != gatewayGroup || kind != "Gateway" || string(p.Name) != gw.Name || orDefault(p.Namespace, r.namespace) != gw.Namespace {
			continue
		}
		if (p.SectionName == nil || *p.SectionName == l.Name) && (p.Port == nil || *p.Port == l.Port) && s.listenerAdmits(gw, l, r) == "" {
			return true
		}
	}
	return false
}

// ingressDefaultServiceProblems, for a render for any cluster: the Gateway's parameters (if any) leave
// its Service's type and node ports to Istio and the cluster. A node port fixed for kind may be
// taken, out of range or forbidden on another cluster, and a NodePort is no load balancer.
func (s *set) ingressDefaultServiceProblems(key string, gw *gatewayv1.Gateway) []error {
	if gw.Spec.Infrastructure == nil || gw.Spec.Infrastructure.ParametersRef == nil {
		return nil
	}
	cm, ok := s.configMaps[gw.Namespace+"/"+gw.Spec.Infrastructure.ParametersRef.Name]
	if !ok {
		return nil // reported by checkGatewayAPIRefs
	}
	svc, _ := cm.Overlays["service"].(*corev1.Service)
	if svc == nil {
		return nil
	}
	var errs []error
	if svc.Spec.Type != "" {
		errs = append(errs, fmt.Errorf("%s: service overlay sets type %s: a render for any cluster keeps Istio's default Service type", cm.ID(), svc.Spec.Type))
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			errs = append(errs, fmt.Errorf("%s: service overlay pins port %s to nodePort %d: a render for any cluster leaves node ports to the cluster, where that one may be taken or forbidden", cm.ID(), p.Name, p.NodePort))
		}
	}
	return errs
}

func (s *set) ingressNodePortProblems(key string, gw *gatewayv1.Gateway, published []int32) []error {
	if gw.Spec.Infrastructure == nil || gw.Spec.Infrastructure.ParametersRef == nil {
		return []error{fmt.Errorf("Gateway %s: no infrastructure.parametersRef: its Service would be a LoadBalancer, which kind cannot serve", key)}
	}
	cm, ok := s.configMaps[gw.Namespace+"/"+gw.Spec.Infrastructure.ParametersRef.Name]
	if !ok {
		return nil // reported by checkGatewayAPIRefs
	}
	svc, _ := cm.Overlays["service"].(*corev1.Service)
	if svc == nil {
		return []error{fmt.Errorf("%s: no `service` overlay: the Gateway's Service would be a LoadBalancer, which kind cannot serve", cm.ID())}
	}
	var errs []error
	if svc.Spec.Type != corev1.ServiceTypeNodePort {
		errs = append(errs, fmt.Errorf("%s: service overlay type %q, want NodePort", cm.ID(), svc.Spec.Type))
	}
	if len(published) == 0 {
		errs = append(errs, fmt.Errorf("%s: no published node ports to check against (Options.PublishedNodePorts, from build/kind/cluster.yaml)", cm.ID()))
	}
	for _, l := range gw.Spec.Listeners {
		sp := servicePort(svc, l.Port)
		switch {
		case sp == nil:
			errs = append(errs, fmt.Errorf("%s: service overlay has no port %d for listener %s", cm.ID(), l.Port, l.Name))
		case !slices.Contains(published, sp.NodePort):
			errs = append(errs, fmt.Errorf("%s: service overlay gives listener %s (port %d) nodePort %d, but the kind cluster publishes %v (build/kind/cluster.yaml)", cm.ID(), l.Name, l.Port, sp.NodePort, published))
		}
	}
	return errs
}

// checkVersionServices: in the Gateway API flavours a route reaches a version through its own
// Service (an HTTPRoute cannot name a DestinationRule subset). A per-version Service (one whose
// selector has a version) is named <app>-<version>, selects exactly app and version, and carries
// the same ports as the workload's Service <app>, so that a route from the one to the other keeps
// every port and protocol. A DestinationRule subset would be dead configuration there.
func (s *set) checkVersionServices(f matrix.Flavour) []error {
	if !f.GatewayAPIRoutes() {
		return nil
	}
	var errs []error
	for _, svc := range s.services {
		v, ok := svc.Spec.Selector["version"]
		if !ok {
			continue
		}
		app := svc.Spec.Selector["app"]
		id := fmt.Sprintf("Service %s/%s", svc.Namespace, svc.Name)
		if len(svc.Spec.Selector) != 2 || app == "" {
			errs = append(errs, fmt.Errorf("%s: a per-version Service selects exactly app and version, has %v", id, svc.Spec.Selector))
			continue
		}
		if svc.Name != app+"-"+v {
			errs = append(errs, fmt.Errorf("%s: a per-version Service is named <app>-<version>, want %s-%s", id, app, v))
		}
		workload := s.service(svc.Namespace, app)
		if workload == nil {
			errs = append(errs, fmt.Errorf("%s: the workload Service %s/%s is not rendered", id, svc.Namespace, app))
			continue
		}
		if !samePorts(svc.Spec.Ports, workload.Spec.Ports) {
			errs = append(errs, fmt.Errorf("%s: ports %s differ from the workload Service %s's %s", id, portsString(svc.Spec.Ports), app, portsString(workload.Spec.Ports)))
		}
	}
	for host, dr := range s.dr {
		if len(dr.GetSubsets()) > 0 {
			errs = append(errs, fmt.Errorf("DestinationRule for %s: subsets are dead configuration in the %s flavour (HTTPRoutes route to per-version Services)", host, f))
		}
	}
	return errs
}

func samePorts(a, b []corev1.ServicePort) bool {
	return portsString(a) == portsString(b)
}

func portsString(ps []corev1.ServicePort) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s:%d->%s/%s/%s", p.Name, p.Port, p.TargetPort.String(), orDefault(p.AppProtocol, "-"), p.Protocol))
	}
	slices.Sort(out)
	return "[" + strings.Join(out, " ") + "]"
}

// meshNamespaceProblems: how meshdemo's namespace joins the mesh in each flavour. Sidecar and
// gateway-api: sidecar injection. Ambient: ambient mode (no injection label: istioctl reports a
// namespace with both), and all its Services use the waypoint the label names, a Gateway of class
// istio-waypoint in the namespace that serves Service traffic over HBONE.
func (s *set) meshNamespaceProblems(f matrix.Flavour, ns *corev1.Namespace) []string {
	var p []string
	if f.Sidecars() {
		if ns.Labels["istio-injection"] != "enabled" {
			p = append(p, "label istio-injection=enabled missing")
		}
		if v, ok := ns.Labels[dataplaneModeLabel]; ok {
			p = append(p, fmt.Sprintf("label %s=%s: the %s flavour runs sidecars", dataplaneModeLabel, v, f))
		}
		return p
	}
	if v, ok := ns.Labels["istio-injection"]; ok {
		p = append(p, fmt.Sprintf("label istio-injection=%s: the ambient flavour has no sidecars (remove the label)", v))
	}
	if ns.Labels[dataplaneModeLabel] != "ambient" {
		p = append(p, fmt.Sprintf("label %s=ambient missing", dataplaneModeLabel))
	}
	wp, ok := ns.Labels[useWaypointLabel]
	if !ok {
		return append(p, fmt.Sprintf("label %s missing: no waypoint, no L7", useWaypointLabel))
	}
	gw := s.kgateways[ns.Name+"/"+wp]
	switch {
	case gw == nil:
		p = append(p, fmt.Sprintf("label %s=%s names no Gateway of the render in %s", useWaypointLabel, wp, ns.Name))
	case gw.Spec.GatewayClassName != waypointClass:
		p = append(p, fmt.Sprintf("label %s=%s names a Gateway of class %s, want %s", useWaypointLabel, wp, gw.Spec.GatewayClassName, waypointClass))
	default:
		if v := gw.Labels[waypointForLabel]; v != "" && v != "service" && v != "all" {
			p = append(p, fmt.Sprintf("waypoint %s is for %q traffic, the namespace's Services need service (or all)", wp, v))
		}
		if !slices.ContainsFunc(gw.Spec.Listeners, func(l gatewayv1.Listener) bool {
			return l.Protocol == hboneProtocol && l.Port == hbonePort
		}) {
			p = append(p, fmt.Sprintf("waypoint %s has no %s listener on port %d", wp, hboneProtocol, hbonePort))
		}
	}
	return p
}

// checkServiceParents: a Service port has at most one route attached (a parentRef without a port
// attaches to every port). Istio applies one route per Service port and drops the others
// (the oldest wins), so an HTTPRoute and a GRPCRoute on one Service each name their port.
func (s *set) checkServiceParents() []error {
	var errs []error
	type attached struct {
		id   string
		port int32 // 0: every port
	}
	byService := map[string][]attached{}
	for _, r := range s.routes {
		for _, p := range r.parents {
			group, kind := parentKind(p)
			if group != "" || kind != "Service" {
				continue
			}
			key := orDefault(p.Namespace, r.namespace) + "/" + string(p.Name)
			a := attached{id: r.id()}
			if p.Port != nil {
				a.port = *p.Port
			}
			for _, prev := range byService[key] {
				if prev.port == 0 || a.port == 0 || prev.port == a.port {
					errs = append(errs, fmt.Errorf("%s: attaches to Service %s port %s, as %s does: Istio keeps one of them", a.id, key, portOrAll(a.port), prev.id))
				}
			}
			byService[key] = append(byService[key], a)
		}
	}
	return errs
}

func portOrAll(p int32) string {
	if p == 0 {
		return "(every port)"
	}
	return fmt.Sprint(p)
}

// checkDestinationRulesOnBackends: in the Gateway API flavours a DestinationRule (outlier
// detection, connection pool, load balancer) acts on the cluster of its host, and a route sends
// its traffic to its backends' clusters. A DestinationRule on a Service whose every port has a
// route attached (the workload Service server2, parent of the HTTPRoute and the GRPCRoute) never
// sees routed traffic: it belongs on the backends (server2-v1, ...).
func (s *set) checkDestinationRulesOnBackends(f matrix.Flavour) []error {
	if !f.GatewayAPIRoutes() {
		return nil
	}
	routed := map[string]map[int32]bool{} // Service FQDN -> ports with a route (0: all)
	for _, r := range s.routes {
		for _, p := range r.parents {
			group, kind := parentKind(p)
			if group != "" || kind != "Service" {
				continue
			}
			host := fqdn(orDefault(p.Namespace, r.namespace), p.Name)
			if routed[host] == nil {
				routed[host] = map[int32]bool{}
			}
			var port int32
			if p.Port != nil {
				port = *p.Port
			}
			routed[host][port] = true
		}
	}
	var errs []error
	for host := range s.dr {
		svc, ports := s.services[host], routed[host]
		if svc == nil || ports == nil {
			continue
		}
		all := ports[0] || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return !ports[p.Port] })
		if all {
			errs = append(errs, fmt.Errorf("DestinationRule for %s: routes attach to every port of that Service and send its traffic to their backends, so the policy never applies in the %s flavour (put it on the backend Services)", host, f))
		}
	}
	return errs
}
