package manifests

import (
	"errors"
	"fmt"
	"github.com/meshdemo/meshdemo/deploy/matrix"
	"slices"
	"strings"
	"time"

	networking "istio.io/api/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Namespace is where every meshdemo object lives.
const Namespace = "meshdemo"

// GatewayHost is the Host header the ingress gateway routes to the client.
const GatewayHost = "client.meshdemo"

const clusterDomain = "svc.cluster.local"

// fqdn is the fully qualified host of a Service: name.namespace.svc.cluster.local.
func fqdn[N ~string](namespace string, name N) string {
	return string(name) + "." + namespace + "." + clusterDomain
}

const partOf = "app.kubernetes.io/part-of"

// set is the rendered objects indexed for the rules.
type set struct {
	namespaces []*corev1.Namespace
	services   map[string]*corev1.Service // by FQDN
	workloads  []workload                 // Deployments and StatefulSets
	secrets    map[string]*corev1.Secret  // by name
	vs         []Object
	dr         map[string]*networking.DestinationRule // by host
	gateways   map[string]*networking.Gateway         // Istio Gateways by namespace/name
	kgateways  map[string]*gatewayv1.Gateway          // Gateway API Gateways by namespace/name
	routes     []route                                // HTTPRoutes and GRPCRoutes
	configMaps map[string]Object                      // by namespace/name
	pdbs       []*policyv1.PodDisruptionBudget
	all        []Object
	release    *matrix.Release // Options.Release
	anyCluster bool            // Options.AnyCluster, or a release bundle
}

func index(objs []Object) (*set, []error) {
	s := &set{
		services:   map[string]*corev1.Service{},
		secrets:    map[string]*corev1.Secret{},
		dr:         map[string]*networking.DestinationRule{},
		gateways:   map[string]*networking.Gateway{},
		kgateways:  map[string]*gatewayv1.Gateway{},
		configMaps: map[string]Object{},
		all:        objs,
	}
	var errs []error
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *corev1.Namespace:
			s.namespaces = append(s.namespaces, t)
		case *corev1.Service:
			s.services[fqdn(t.Namespace, t.Name)] = t
		case *corev1.Secret:
			s.secrets[t.Name] = t
		case *appsv1.Deployment:
			s.workloads = append(s.workloads, deploymentWorkload(t))
		case *appsv1.StatefulSet:
			s.workloads = append(s.workloads, statefulSetWorkload(t))
		case *networking.VirtualService:
			s.vs = append(s.vs, o)
		case *networking.DestinationRule:
			if _, dup := s.dr[t.GetHost()]; dup {
				errs = append(errs, fmt.Errorf("%s: a second DestinationRule for host %s", o.ID(), t.GetHost()))
			}
			s.dr[t.GetHost()] = t
		case *networking.Gateway:
			s.gateways[o.Meta.Namespace+"/"+o.Meta.Name] = t
		case *gatewayv1.Gateway:
			s.kgateways[t.Namespace+"/"+t.Name] = t
		case *corev1.ConfigMap:
			s.configMaps[t.Namespace+"/"+t.Name] = o
		case *policyv1.PodDisruptionBudget:
			s.pdbs = append(s.pdbs, t)
		}
		if r, ok := newRoute(o); ok {
			s.routes = append(s.routes, r)
		}
	}
	return s, errs
}

// Options are what the rules need besides the render.
type Options struct {
	// Flavour is the flavour the render belongs to (the zero value is Sidecar).
	Flavour matrix.Flavour
	// PublishedNodePorts are the node ports the kind cluster publishes on the host
	// (KindPublishedNodePorts reads them from build/kind/cluster.yaml). The Gateway API flavours'
	// ingress Gateway must pin its Service to one of them.
	PublishedNodePorts []int32
	// WithoutCanary marks a scenario component rendered without the canary (AloneIn): a policy's
	// targetRef may then name a Service that only the canary's components add (the ambient authz
	// component's L7 policy for postgres). Every other rule holds.
	WithoutCanary bool
	// AnyCluster marks a render for any cluster (matrix.ClusterIn, pilot's form; matrix.ReleaseIn)
	// rather than for kind (matrix.ScenarioIn, AloneIn, the zero value): the Gateway API ingress
	// then keeps Istio's default Service type and pins no node port, and PublishedNodePorts is not
	// consulted. A release bundle (Release) is always for any cluster.
	AnyCluster bool
	// Release marks a release bundle of that release (matrix.ReleaseIn). Two more rules then read
	// it: meshdemo's images are the release's, by digest, never pulled with policy Never
	// (checkImages); and the contract's pod rules recognise them under the release's registry.
	Release *matrix.Release
}

// Check applies every rule of the flavour to a rendered set and returns all violations joined
// (nil if none).
func Check(objs []Object, opts Options) error {
	f := opts.Flavour
	if f == "" {
		f = matrix.Sidecar
	}
	s, errs := index(objs)
	s.release, s.anyCluster = opts.Release, opts.AnyCluster || opts.Release != nil
	errs = append(errs, s.checkNamespace(f)...)
	errs = append(errs, s.checkVersionSubsets(f)...)
	errs = append(errs, s.checkNoIstioRouting(f)...)
	errs = append(errs, s.checkVersionServices(f)...)
	errs = append(errs, s.checkTargetRefs(opts.WithoutCanary)...)
	errs = append(errs, s.checkDestinationRulesOnBackends(f)...)
	if !f.GatewayAPIRoutes() {
		errs = append(errs, s.checkGateway()...)
	} else {
		errs = append(errs, s.checkIngress(opts.PublishedNodePorts)...)
	}
	if s.release != nil {
		errs = append(errs, s.checkImages()...)
	}
	for _, rule := range []func(*set) []error{
		(*set).checkHostsQualified,
		(*set).checkOneVirtualServicePerHost,
		(*set).checkWeights,
		(*set).checkRouteSubsets,
		(*set).checkDestinationPorts,
		(*set).checkRouteHostConflicts,
		(*set).checkBackendWeights,
		(*set).checkPathMatches,
		(*set).checkGatewayAPIRefs,
		(*set).checkServiceParents,
		(*set).checkPods,
		(*set).checkEnv,
		(*set).checkReplicas,
	} {
		errs = append(errs, rule(s)...)
	}
	return errors.Join(errs...)
}

// CheckKubernetes applies the rules that concern Kubernetes objects only, for renders without
// Istio configuration (deploy/base, deploy/overlays/kind).
func CheckKubernetes(objs []Object) error {
	s, errs := index(objs)
	errs = append(errs, s.checkNamespace(matrix.Sidecar)...)
	errs = append(errs, s.checkPods()...)
	errs = append(errs, s.checkEnv()...)
	errs = append(errs, s.checkReplicas()...)
	return errors.Join(errs...)
}

// checkNamespace: meshdemo's namespace, joined to the mesh as the flavour wants
// (meshNamespaceProblems), holds every object; the Gateway API flavours add the ingress
// namespace, which has neither sidecars nor ambient mode (the gateway is an Envoy of its own).
// Everything carries the part-of label.
func (s *set) checkNamespace(f matrix.Flavour) []error {
	var errs []error
	allowed := []string{Namespace}
	if f.GatewayAPIRoutes() {
		allowed = append(allowed, f.IngressNamespace()) // a cross-namespace gateway: its routes live in meshdemo
	}
	found := false
	for _, ns := range s.namespaces {
		switch {
		case ns.Name == Namespace:
			found = true
			for _, msg := range s.meshNamespaceProblems(f, ns) {
				errs = append(errs, fmt.Errorf("Namespace %s: %s", ns.Name, msg))
			}
		case slices.Contains(allowed, ns.Name):
			for _, l := range []string{"istio-injection", dataplaneModeLabel} {
				if v, ok := ns.Labels[l]; ok {
					errs = append(errs, fmt.Errorf("Namespace %s: label %s=%s: the ingress gateway's namespace is not in the data plane", ns.Name, l, v))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("Namespace %s: unexpected namespace", ns.Name))
		}
	}
	if !found {
		errs = append(errs, fmt.Errorf("Namespace %s is not rendered", Namespace))
	}
	for _, o := range s.all {
		if o.Kind != "Namespace" && !slices.Contains(allowed, o.Meta.Namespace) {
			errs = append(errs, fmt.Errorf("%s: not in namespace %s", o.ID(), Namespace))
		}
		if o.Kind != "Namespace" && o.Meta.Namespace != Namespace && !slices.ContainsFunc(s.namespaces, func(ns *corev1.Namespace) bool { return ns.Name == o.Meta.Namespace }) {
			errs = append(errs, fmt.Errorf("%s: its namespace is not rendered", o.ID()))
		}
		// One label on everything, so that switching scenarios can prune what the last one added
		// (kubectl apply --prune -l app.kubernetes.io/part-of=meshdemo).
		if o.Meta.Labels[partOf] != "meshdemo" {
			errs = append(errs, fmt.Errorf("%s: label %s=meshdemo missing", o.ID(), partOf))
		}
	}
	return errs
}

// serviceHost reports whether h is the fully qualified name of a rendered Service.
func (s *set) serviceHost(h string) bool { _, ok := s.services[h]; return ok }

// gatewayHosts are the hosts of the gateways a VirtualService binds to.
func (s *set) gatewayHosts(vsNamespace string, vs *networking.VirtualService) []string {
	var hosts []string
	for _, g := range vs.GetGateways() {
		if g == "mesh" {
			continue
		}
		if !strings.Contains(g, "/") {
			g = vsNamespace + "/" + g
		}
		for _, srv := range s.gateways[g].GetServers() {
			for _, h := range srv.GetHosts() {
				if _, name, ok := strings.Cut(h, "/"); ok {
					h = name
				}
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// checkHostsQualified: every host that names a Service is its full name
// (<name>.<namespace>.svc.cluster.local) and the Service exists; the only other host a
// VirtualService may claim is one of its gateways' hosts.
func (s *set) checkHostsQualified() []error {
	var errs []error
	for _, o := range s.vs {
		vs := o.Typed.(*networking.VirtualService)
		gw := s.gatewayHosts(o.Meta.Namespace, vs)
		for _, h := range vs.GetHosts() {
			if !s.serviceHost(h) && !slices.Contains(gw, h) {
				errs = append(errs, fmt.Errorf("%s: host %q is neither the fully qualified name of a Service nor a host of its gateways", o.ID(), h))
			}
		}
		for _, d := range destinations(vs) {
			if !s.serviceHost(d.GetHost()) {
				errs = append(errs, fmt.Errorf("%s: destination host %q is not the fully qualified name of a Service", o.ID(), d.GetHost()))
				continue
			}
			if p := d.GetPort().GetNumber(); p != 0 && !slices.ContainsFunc(s.services[d.GetHost()].Spec.Ports, func(sp corev1.ServicePort) bool { return uint32(sp.Port) == p }) {
				errs = append(errs, fmt.Errorf("%s: destination %s port %d is not a port of the Service", o.ID(), d.GetHost(), p))
			}
		}
	}
	for h := range s.dr {
		if !s.serviceHost(h) {
			errs = append(errs, fmt.Errorf("DestinationRule host %q is not the fully qualified name of a Service", h))
		}
	}
	return errs
}

// destinations are every destination of a VirtualService's HTTP routes, mirrors included.
func destinations(vs *networking.VirtualService) []*networking.Destination {
	var out []*networking.Destination
	for _, r := range vs.GetHttp() {
		for _, d := range r.GetRoute() {
			out = append(out, d.GetDestination())
		}
		if m := r.GetMirror(); m != nil {
			out = append(out, m)
		}
		for _, m := range r.GetMirrors() {
			out = append(out, m.GetDestination())
		}
	}
	return out
}

// checkOneVirtualServicePerHost: Istio merges or drops VirtualServices that share a host, so a
// scenario must patch the base one instead of adding another.
func (s *set) checkOneVirtualServicePerHost() []error {
	var errs []error
	owner := map[string]string{}
	for _, o := range s.vs {
		for _, h := range o.Typed.(*networking.VirtualService).GetHosts() {
			if prev, dup := owner[h]; dup {
				errs = append(errs, fmt.Errorf("%s: host %q is already claimed by %s", o.ID(), h, prev))
				continue
			}
			owner[h] = o.ID()
		}
	}
	return errs
}

// checkWeights: the weights of every route sum to 100 (a single destination may omit its weight).
func (s *set) checkWeights() []error {
	var errs []error
	for _, o := range s.vs {
		for i, r := range o.Typed.(*networking.VirtualService).GetHttp() {
			var sum int32
			for _, d := range r.GetRoute() {
				sum += d.GetWeight()
			}
			if len(r.GetRoute()) == 1 && sum == 0 {
				continue
			}
			if sum != 100 {
				errs = append(errs, fmt.Errorf("%s: http route %d (%q): weights sum to %d, not 100", o.ID(), i, r.GetName(), sum))
			}
		}
	}
	return errs
}

// checkRouteSubsets: every subset a route or mirror names exists in the DestinationRule of its host.
func (s *set) checkRouteSubsets() []error {
	var errs []error
	for _, o := range s.vs {
		for _, d := range destinations(o.Typed.(*networking.VirtualService)) {
			if d.GetSubset() == "" {
				continue
			}
			dr, ok := s.dr[d.GetHost()]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: subset %q of %s but no DestinationRule for that host", o.ID(), d.GetSubset(), d.GetHost()))
				continue
			}
			if !slices.ContainsFunc(dr.GetSubsets(), func(ss *networking.Subset) bool { return ss.GetName() == d.GetSubset() }) {
				errs = append(errs, fmt.Errorf("%s: subset %q of %s is not defined in its DestinationRule", o.ID(), d.GetSubset(), d.GetHost()))
			}
		}
	}
	return errs
}

// checkVersionSubsets: every pod is selected by a Service, and a Service's DestinationRule
// agrees with the versions of the pods behind it. A versioned pod (label version, as every
// meshdemo workload has) needs a subset selecting it. An unversioned pod (PostgreSQL: one
// version, nothing to route between) needs a DestinationRule without subsets, if it has one at
// all: a subset selects by labels, and routes to it would find the pod missing.
//
// In the Gateway API flavours routes reach versions through per-version Services instead
// (checkVersionServices); only "every pod is selected by a Service" applies there.
func (s *set) checkVersionSubsets(f matrix.Flavour) []error {
	var errs []error
	for _, w := range s.workloads {
		pod := labels.Set(w.template.Labels)
		selected := false
		for host, svc := range s.services {
			if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(pod) {
				continue
			}
			selected = true
			if f.GatewayAPIRoutes() {
				continue
			}
			dr, ok := s.dr[host]
			switch {
			case pod["version"] == "":
				if ok && len(dr.GetSubsets()) > 0 {
					errs = append(errs, fmt.Errorf("%s: pods without a version label, but the DestinationRule for %s defines subsets", w.id(), host))
				}
			case !ok:
				errs = append(errs, fmt.Errorf("%s: no DestinationRule for %s", w.id(), host))
			case !slices.ContainsFunc(dr.GetSubsets(), func(ss *networking.Subset) bool {
				return labels.SelectorFromSet(ss.GetLabels()).Matches(pod)
			}):
				errs = append(errs, fmt.Errorf("%s: version %q has no subset in the DestinationRule for %s", w.id(), pod["version"], host))
			}
		}
		if !selected {
			errs = append(errs, fmt.Errorf("%s: no Service selects its pods", w.id()))
		}
	}
	return errs
}

// checkGateway: every host of a gateway is routed by exactly one VirtualService bound to that
// gateway, and the client's VirtualService serves the gateway Host and the mesh, with a timeout.
func (s *set) checkGateway() []error {
	var errs []error
	if len(s.gateways) == 0 {
		return []error{errors.New("no networking.istio.io Gateway is rendered: the sidecar flavour's ingress")}
	}
	for key, gw := range s.gateways {
		for _, srv := range gw.GetServers() {
			for _, h := range srv.GetHosts() {
				if _, name, ok := strings.Cut(h, "/"); ok {
					h = name
				}
				n := 0
				for _, o := range s.vs {
					vs := o.Typed.(*networking.VirtualService)
					if slices.Contains(vs.GetHosts(), h) && slices.Contains(s.gatewayHosts(o.Meta.Namespace, vs), h) && bindsGateway(o, key) {
						n++
					}
				}
				if n != 1 {
					errs = append(errs, fmt.Errorf("Gateway %s: host %q is routed by %d VirtualServices bound to it, want 1", key, h, n))
				}
			}
		}
	}
	var client *networking.VirtualService
	for _, o := range s.vs {
		if o.Meta.Name == "client" {
			client = o.Typed.(*networking.VirtualService)
		}
	}
	if client == nil {
		return append(errs, errors.New("VirtualService client is not rendered"))
	}
	if !slices.Contains(client.GetHosts(), GatewayHost) {
		errs = append(errs, fmt.Errorf("VirtualService client: host %q missing", GatewayHost))
	}
	if !slices.Contains(client.GetGateways(), "mesh") || len(client.GetGateways()) < 2 {
		errs = append(errs, fmt.Errorf("VirtualService client: must bind both mesh and the gateway, has %v", client.GetGateways()))
	}
	for i, r := range client.GetHttp() {
		if r.GetTimeout().AsDuration() <= 0 || r.GetTimeout().AsDuration() > 30*time.Second {
			errs = append(errs, fmt.Errorf("VirtualService client: http route %d (%q) needs a timeout (0 < t <= 30s)", i, r.GetName()))
		}
	}
	return errs
}

func bindsGateway(o Object, key string) bool {
	for _, g := range o.Typed.(*networking.VirtualService).GetGateways() {
		if g == key || o.Meta.Namespace+"/"+g == key {
			return true
		}
	}
	return false
}

// checkDestinationPorts: a route of a mesh-only VirtualService without a port match serves every
// port of its host. If it pins a destination port on a Service with several ports (http 8080 and
// grpc 50051), calls made on the other port are sent to the pinned one: gRPC would reach the HTTP
// server. Such a route must leave the port out (Envoy keeps the port of the call) or match it.
// A VirtualService bound to a gateway needs the port (the gateway's port is not the Service's).
func (s *set) checkDestinationPorts() []error {
	var errs []error
	for _, o := range s.vs {
		vs := o.Typed.(*networking.VirtualService)
		if len(vs.GetGateways()) > 0 && !slices.Equal(vs.GetGateways(), []string{"mesh"}) {
			continue
		}
		for i, r := range vs.GetHttp() {
			dests := []*networking.Destination{r.GetMirror()}
			for _, d := range r.GetRoute() {
				dests = append(dests, d.GetDestination())
			}
			for _, m := range r.GetMirrors() {
				dests = append(dests, m.GetDestination())
			}
			for _, d := range dests {
				p := d.GetPort().GetNumber()
				svc, ok := s.services[d.GetHost()]
				if p == 0 || !ok || len(svc.Spec.Ports) < 2 {
					continue
				}
				matched := len(r.GetMatch()) > 0 && !slices.ContainsFunc(r.GetMatch(), func(m *networking.HTTPMatchRequest) bool { return m.GetPort() != p })
				if !matched {
					errs = append(errs, fmt.Errorf("%s: http route %d (%q) sends every port of %s to port %d; leave the destination port out or match the port",
						o.ID(), i, r.GetName(), d.GetHost(), p))
				}
			}
		}
	}
	return errs
}

// checkReplicas: a workload that runs more than one replica (server1-v1 in grpc-balancing,
// server2-v1 in outlier-detection) has a PodDisruptionBudget with a policy selecting its pods,
// so that a drain cannot evict them all at once, and a topology spread constraint over its own
// pods, so that one node going away does not take them all.
func (s *set) checkReplicas() []error {
	var errs []error
	for _, w := range s.workloads {
		if w.replicas < 2 {
			continue
		}
		pod := labels.Set(w.template.Labels)
		selects := func(sel *metav1.LabelSelector) bool {
			ls, err := metav1.LabelSelectorAsSelector(sel)
			return err == nil && sel != nil && !ls.Empty() && ls.Matches(pod)
		}
		if !slices.ContainsFunc(s.pdbs, func(b *policyv1.PodDisruptionBudget) bool {
			// Every object is in meshdemo (checkNamespace).
			return selects(b.Spec.Selector) && (b.Spec.MinAvailable != nil || b.Spec.MaxUnavailable != nil)
		}) {
			errs = append(errs, fmt.Errorf("%s: %d replicas and no PodDisruptionBudget with minAvailable or maxUnavailable selects its pods", w.id(), w.replicas))
		}
		if !slices.ContainsFunc(w.template.Spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
			return c.TopologyKey != "" && selects(c.LabelSelector)
		}) {
			errs = append(errs, fmt.Errorf("%s: %d replicas and no topologySpreadConstraints over its own pods", w.id(), w.replicas))
		}
	}
	return errs
}
