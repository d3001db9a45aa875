package pilot

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/workloadapi"
	"istio.io/istio/pkg/workloadapi/security"
)

// ambientBaseChecks: what every ambient scenario inherits from istio/ambient/base and
// istio/ambient/dataplane: the Gateway API gateway's Host routing, ztunnel's records (every pod
// captured, every Service bound to the waypoint, mutual TLS only), the waypoint's routes (v1 only,
// gRPC per request) and the database's TCP port through the waypoint.
func ambientBaseChecks() []check {
	nsLabel := func(name, label, value string) fixture {
		return fixture{name, func(objs []object) error {
			ns, err := one(objs, "Namespace", namespace)
			if err != nil {
				return err
			}
			labels := mapAt(ns, "metadata", "labels")
			if value == "" {
				if _, ok := labels[label]; !ok {
					return fmt.Errorf("%w: Namespace %s has no label %s", errNoTarget, namespace, label)
				}
				delete(labels, label)
				return nil
			}
			setIn(ns, value, "metadata", "labels", label)
			return nil
		}}
	}
	return append(gatewayAPIIngressChecks(), []check{
		grpcHopsCheckNamed("grpc-hops-routed-per-request-by-the-waypoint", gatewayGRPCHopFixtures()),
		{
			name: "ingress-reaches-client-pods-over-hbone",
			run:  ingressOverHBONE,
			broken: []fixture{
				nsLabel("dataplane-mode-label-removed", "istio.io/dataplane-mode", ""),
				{"client-service-ingress-use-waypoint", func(objs []object) error {
					svc, err := one(objs, "Service", "client")
					if err != nil {
						return err
					}
					setIn(svc, "true", "metadata", "labels", "istio.io/ingress-use-waypoint")
					return nil
				}},
			},
		},
		{
			name:   "ztunnel-services-use-the-waypoint",
			run:    servicesUseWaypoint,
			broken: []fixture{nsLabel("use-waypoint-label-removed", "istio.io/use-waypoint", "")},
		},
		{
			name: "ztunnel-captures-every-pod",
			run:  podsCaptured,
			broken: []fixture{
				nsLabel("dataplane-mode-label-removed", "istio.io/dataplane-mode", ""),
				nsLabel("sidecar-injection-back-on", "istio-injection", "enabled"),
			},
		},
		{
			name: "ztunnel-mtls-strict",
			run:  ztunnelStrict,
			broken: []fixture{
				peerAuthPermissive,
			},
		},
		{
			name: "database-tcp-through-the-waypoint",
			run:  databaseThroughWaypoint,
			broken: []fixture{
				databasePortAsHTTP,
			},
		},
		{
			name: "waypoint-access-log",
			run:  waypointAccessLog,
			broken: []fixture{
				{"telemetry-without-access-log", func(objs []object) error {
					tm, err := one(objs, "Telemetry", "meshdemo")
					if err != nil {
						return err
					}
					if !deleteIn(tm.spec(), "accessLogging") {
						return fmt.Errorf("%w: Telemetry meshdemo has no accessLogging", errNoTarget)
					}
					return nil
				}},
			},
		},
	}...)
}

// ztunnel's view of the mesh: the workload and service records istiod sends over WDS, and the
// authorization policies it sends with them (pilot/pkg/serviceregistry/ambient).
type ztunnelView struct {
	workloads map[string]*workloadapi.Workload // by pod name
	services  map[string]*workloadapi.Service  // by Service name in meshdemo
	policies  map[string]*security.Authorization
}

func (m *mesh) ztunnel() (ztunnelView, error) {
	idx := m.fds.Discovery.Env.AmbientIndexes
	v := ztunnelView{workloads: map[string]*workloadapi.Workload{}, services: map[string]*workloadapi.Service{}, policies: map[string]*security.Authorization{}}
	infos, _ := idx.AddressInformation(nil)
	if len(infos) == 0 {
		return v, errors.New("ztunnel gets no workload or service records (is ambient mode on in istiod?)")
	}
	for _, a := range infos {
		if w := a.GetWorkload(); w != nil {
			v.workloads[w.GetName()] = w
		}
		if s := a.GetService(); s != nil && s.GetNamespace() == namespace {
			v.services[s.GetName()] = s
		}
	}
	for _, p := range idx.Policies(nil) {
		a := p.Authorization
		v.policies[a.GetNamespace()+"/"+a.GetName()] = a
	}
	return v, nil
}

// servicesUseWaypoint: every Service of the render in meshdemo (the waypoint's own excepted)
// is bound to the namespace's waypoint in ztunnel's records, so ztunnel sends its calls there.
func servicesUseWaypoint(m *mesh) error {
	v, err := m.ztunnel()
	if err != nil {
		return err
	}
	wantHost := fqdn("waypoint")
	var errs []error
	for _, s := range findObjects(m.objs, "Service", func(o object) bool { return o.namespace() == namespace }) {
		rec := v.services[s.name()]
		if rec == nil {
			errs = append(errs, fmt.Errorf("Service %s: no ztunnel record", s.name()))
			continue
		}
		if got := rec.GetWaypoint().GetHostname().GetHostname(); got != wantHost {
			errs = append(errs, fmt.Errorf("Service %s: waypoint %q, want %s", s.name(), got, wantHost))
		}
	}
	return errors.Join(errs...)
}

// podsCaptured: every meshdemo pod is in ambient mode (ztunnel tunnels its traffic over HBONE),
// and the namespace does not inject sidecars any more. The waypoint's own pod is not captured
// (istio.io/dataplane-mode: none): its record has no tunnel protocol, which `istioctl
// ztunnel-config workloads` prints as TCP (docs/flavours.md). istiod sets HBONE only for a pod
// that istio-cni marked redirected or that is labelled networking.istio.io/tunnel=http
// (pilot/pkg/serviceregistry/ambient/workloads.go, setTunnelProtocol).
func podsCaptured(m *mesh) error {
	v, err := m.ztunnel()
	if err != nil {
		return err
	}
	var errs []error
	if w := v.workloads[m.wp.name]; w == nil {
		errs = append(errs, fmt.Errorf("waypoint pod %s: no ztunnel workload record", m.wp.name))
	} else if w.GetTunnelProtocol() != workloadapi.TunnelProtocol_NONE {
		errs = append(errs, fmt.Errorf("waypoint pod %s: tunnel protocol %v, want NONE (istioctl: TCP; the waypoint is not captured)",
			m.wp.name, w.GetTunnelProtocol()))
	}
	for _, p := range m.pods {
		w := v.workloads[p.name]
		if w == nil {
			errs = append(errs, fmt.Errorf("pod %s: no ztunnel workload record", p.name))
			continue
		}
		if w.GetTunnelProtocol() != workloadapi.TunnelProtocol_HBONE {
			errs = append(errs, fmt.Errorf("pod %s: tunnel protocol %v, want HBONE (not captured by ztunnel)", p.name, w.GetTunnelProtocol()))
		}
	}
	ns, err := one(m.objs, "Namespace", namespace)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if v := str(ns, "metadata", "labels", "istio-injection"); v == "enabled" {
		errs = append(errs, fmt.Errorf("Namespace %s still injects sidecars (istio-injection: %s)", namespace, v))
	}
	return errors.Join(errs...)
}

// ztunnelStrict: ztunnel refuses a plaintext connection (no peer identity) to every meshdemo pod.
func ztunnelStrict(m *mesh) error {
	v, err := m.ztunnel()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range m.pods {
		ok, err := v.allows(p, "", want.appPort)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			errs = append(errs, fmt.Errorf("ztunnel lets a plaintext connection reach %s", p.name))
		}
	}
	return errors.Join(errs...)
}

// allows evaluates ztunnel's authorization of a connection to pod p from peer (a SPIFFE ID, ""
// without mutual TLS) on port, with ztunnel's rules: the policies that apply to the workload are
// those of its namespace (scope NAMESPACE), of the root namespace (GLOBAL) and the ones listed on
// its record (WORKLOAD_SELECTOR); any matching DENY denies; with ALLOW policies present, one must
// match. A policy's groups are OR-ed, a group's rules AND-ed, a rule's matches OR-ed, a match's
// fields AND-ed with their values OR-ed (pkg/workloadapi/security/authorization.proto).
func (v ztunnelView) allows(p pod, peer string, port int) (bool, error) {
	w := v.workloads[p.name]
	if w == nil {
		return false, fmt.Errorf("pod %s: no ztunnel workload record", p.name)
	}
	var applied []*security.Authorization
	for _, a := range v.policies {
		switch {
		case a.GetScope() == security.Scope_NAMESPACE && a.GetNamespace() == w.GetNamespace(),
			a.GetScope() == security.Scope_GLOBAL && a.GetNamespace() == "istio-system",
			a.GetScope() == security.Scope_WORKLOAD_SELECTOR && slices.Contains(w.GetAuthorizationPolicies(), a.GetNamespace()+"/"+a.GetName()):
			applied = append(applied, a)
		}
	}
	principal := strings.TrimPrefix(peer, "spiffe://")
	allowPolicies, allowed := 0, false
	for _, a := range applied {
		if a.GetDryRun() {
			continue
		}
		matched, err := ztunnelPolicyMatches(a, principal, port)
		if err != nil {
			return false, fmt.Errorf("policy %s/%s: %w", a.GetNamespace(), a.GetName(), err)
		}
		switch a.GetAction() {
		case security.Action_DENY:
			if matched {
				return false, nil
			}
		case security.Action_ALLOW:
			allowPolicies++
			allowed = allowed || matched
		}
	}
	return allowPolicies == 0 || allowed, nil
}

func ztunnelPolicyMatches(a *security.Authorization, principal string, port int) (bool, error) {
	for _, g := range a.GetGroups() {
		all := true
		for _, r := range g.GetRules() {
			anyMatch := false
			for _, mt := range r.GetMatches() {
				ok, err := ztunnelMatch(mt, principal, port)
				if err != nil {
					return false, err
				}
				anyMatch = anyMatch || ok
			}
			all = all && anyMatch
		}
		if all {
			return true, nil
		}
	}
	return false, nil
}

func ztunnelMatch(mt *security.Match, principal string, port int) (bool, error) {
	if len(mt.GetNamespaces())+len(mt.GetNotNamespaces())+len(mt.GetServiceAccounts())+len(mt.GetNotServiceAccounts())+
		len(mt.GetSourceIps())+len(mt.GetNotSourceIps())+len(mt.GetDestinationIps())+len(mt.GetNotDestinationIps()) > 0 {
		return false, errors.New("namespace, service account and IP matches are not supported by this evaluator")
	}
	strMatch := func(ms []*security.StringMatch) bool {
		for _, s := range ms {
			switch x := s.GetMatchType().(type) {
			case *security.StringMatch_Exact:
				if principal == x.Exact {
					return true
				}
			case *security.StringMatch_Prefix:
				if strings.HasPrefix(principal, x.Prefix) && principal != "" {
					return true
				}
			case *security.StringMatch_Suffix:
				if strings.HasSuffix(principal, x.Suffix) && principal != "" {
					return true
				}
			case *security.StringMatch_Presence:
				if principal != "" {
					return true
				}
			}
		}
		return false
	}
	if len(mt.GetPrincipals()) > 0 && !strMatch(mt.GetPrincipals()) {
		return false, nil
	}
	if len(mt.GetNotPrincipals()) > 0 && strMatch(mt.GetNotPrincipals()) {
		return false, nil
	}
	if len(mt.GetDestinationPorts()) > 0 && !slices.Contains(mt.GetDestinationPorts(), uint32(port)) {
		return false, nil
	}
	if slices.Contains(mt.GetNotDestinationPorts(), uint32(port)) {
		return false, nil
	}
	return true, nil
}

// databaseThroughWaypoint: the database's Service port is served by the waypoint as TCP (a TCP
// proxy, no HTTP connection manager: PostgreSQL's wire protocol is not HTTP).
func databaseThroughWaypoint(m *mesh) error {
	db := want.database
	name := fmt.Sprintf("inbound-vip|%d|tcp|%s", db.port, fqdn(db.name))
	fc, err := waypointChainFor(m.waypoint(), name)
	if err != nil {
		return err
	}
	if _, err := httpConnectionManager(fc); err == nil {
		return fmt.Errorf("waypoint chain %s treats the database's connections as HTTP", name)
	}
	for _, f := range fc.GetFilters() {
		if f.GetName() == "envoy.filters.network.tcp_proxy" {
			return nil
		}
	}
	return fmt.Errorf("waypoint chain %s has no TCP proxy", name)
}

// waypointAccessLog: the Telemetry's access log reaches the waypoint (targetRefs), on every chain
// of the meshdemo Services' HTTP ports.
func waypointAccessLog(m *mesh) error {
	sim := m.waypoint()
	var errs []error
	for _, svc := range []string{"client", "server1", "server2", "user-service"} {
		h, err := waypointHCM(sim, waypointChain(svc, want.appPort))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(h.GetAccessLog()) == 0 {
			errs = append(errs, fmt.Errorf("waypoint chain %s writes no access log", waypointChain(svc, want.appPort)))
		}
	}
	return errors.Join(errs...)
}

// ingressOverHBONE: the ingress gateway sends the documented Host's calls straight to the client
// pods (not through the waypoint: ztunnel's client policy admits the gateway's identity), tunnelled
// over HBONE (Envoy's internal connect_originate listener), so they arrive over mutual TLS.
func ingressOverHBONE(m *mesh) error {
	name := m.ingressCluster()
	var clientIPs []string
	for _, p := range m.pods {
		if p.labels["app"] == "client" {
			clientIPs = append(clientIPs, p.ip)
		}
	}
	for _, cla := range m.fds.Endpoints(m.proxy(m.gateway, model.Router)) {
		if cla.GetClusterName() != name {
			continue
		}
		var errs []error
		n := 0
		for _, le := range cla.GetEndpoints() {
			for _, e := range le.GetLbEndpoints() {
				n++
				ia := e.GetEndpoint().GetAddress().GetEnvoyInternalAddress()
				if ia.GetServerListenerName() != "connect_originate" {
					errs = append(errs, fmt.Errorf("ingress EDS %s: endpoint %v is not tunnelled over HBONE", name, e.GetEndpoint().GetAddress()))
					continue
				}
				host, port, err := endpointAddress(e.GetEndpoint().GetAddress())
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if !slices.Contains(clientIPs, host) || port != want.appPort {
					errs = append(errs, fmt.Errorf("ingress EDS %s: endpoint %s:%d, want a client pod (%v) on %d", name, host, port, clientIPs, want.appPort))
				}
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("ingress EDS %s: no endpoints", name))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("no EDS assignment for %s at the ingress gateway", name)
}
