package pilot

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	fault "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xdstest"
)

// request is one HTTP request as the proxy sees it.
type request struct {
	host    string // Host / :authority
	port    int    // destination port (the listener port)
	address string // destination IP; empty lets pilot's simulation pick the wildcard listener
	method  string
	path    string
	headers map[string]string // lower-case names
	// protocol is what the caller speaks; HTTP/1.1 when empty.
	protocol simulation.Protocol
}

func (r request) call(mode simulation.CallMode) simulation.Call {
	h := http.Header{}
	for k, v := range r.headers {
		h.Set(k, v)
	}
	return simulation.Call{
		Address:    r.address,
		Port:       r.port,
		Path:       r.path,
		Protocol:   cmp.Or(r.protocol, simulation.HTTP),
		HostHeader: r.host,
		Headers:    h,
		CallMode:   mode,
	}
}

func (r request) header(name string) (string, bool) {
	switch strings.ToLower(name) {
	case ":path":
		return r.path, true
	case ":method":
		if r.method == "" {
			return http.MethodGet, true
		}
		return r.method, true
	case ":authority", "host":
		return r.host, true
	case ":scheme":
		return "http", true
	}
	v, ok := r.headers[strings.ToLower(name)]
	return v, ok
}

// routed is where a request lands: the listener, route table, virtual host and route Envoy
// picks, as istiod configured them.
type routed struct {
	listener, routeConfig, virtualHost string
	route                              *route.Route
}

func (r routed) String() string {
	return fmt.Sprintf("listener %s, route config %s, virtual host %s, route %q",
		r.listener, r.routeConfig, r.virtualHost, r.route.GetName())
}

// cluster is the single destination cluster of the route, or an error for weighted routes.
func (r routed) cluster() (string, error) {
	a := r.route.GetRoute()
	if a == nil {
		return "", fmt.Errorf("%s: not a forwarding route (action %T)", r, r.route.GetAction())
	}
	if c := a.GetCluster(); c != "" {
		return c, nil
	}
	return "", fmt.Errorf("%s: no single cluster (weighted: %v)", r, weights(a))
}

// weights maps each weighted cluster of a route action to its weight.
func weights(a *route.RouteAction) map[string]uint32 {
	out := map[string]uint32{}
	for _, c := range a.GetWeightedClusters().GetClusters() {
		out[c.GetName()] += c.GetWeight().GetValue()
	}
	return out
}

// send walks a request through a proxy's configuration. pilot/pkg/simulation picks the listener,
// filter chain, route configuration and virtual host exactly as Envoy would, but chooses routes by
// path alone; route selection here also honours header, method and query matchers, which header
// routing depends on.
func send(sim *simulation.Simulation, mode simulation.CallMode, req request) (routed, error) {
	if req.path == "" {
		req.path = "/"
	}
	res := sim.Run(req.call(mode))
	if res.Error != nil {
		return routed{}, fmt.Errorf("request %s:%d%s: %w", req.host, req.port, req.path, res.Error)
	}
	out := routed{listener: res.ListenerMatched, routeConfig: res.RouteConfigMatched, virtualHost: res.VirtualHostMatched}
	rc := xdstest.ExtractRouteConfigurations(sim.Routes)[res.RouteConfigMatched]
	if rc == nil {
		return out, fmt.Errorf("route configuration %q not found (inline route configs are not expected here)", res.RouteConfigMatched)
	}
	var vh *route.VirtualHost
	for _, v := range rc.GetVirtualHosts() {
		if v.GetName() == res.VirtualHostMatched {
			vh = v
		}
	}
	if vh == nil {
		return out, fmt.Errorf("virtual host %q not in route configuration %q", res.VirtualHostMatched, rc.GetName())
	}
	r, err := firstMatchingRoute(vh, req)
	if err != nil {
		return out, err
	}
	if r == nil {
		return out, fmt.Errorf("%s:%d%s headers %v: %w (virtual host %s)", req.host, req.port, req.path, req.headers, simulation.ErrNoRoute, vh.GetName())
	}
	out.route = r
	return out, nil
}

// firstMatchingRoute is the route Envoy picks in a virtual host: the first whose match (path and
// headers, by the package's own evaluator) accepts req; nil when none does.
func firstMatchingRoute(vh *route.VirtualHost, req request) (*route.Route, error) {
	for _, r := range vh.GetRoutes() {
		ok, err := routeMatches(r.GetMatch(), req)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", r.GetName(), err)
		}
		if ok {
			return r, nil
		}
	}
	return nil, nil
}

func routeMatches(m *route.RouteMatch, req request) (bool, error) {
	p := req.path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	caseSensitive := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	fold := func(s string) string {
		if caseSensitive {
			return s
		}
		return strings.ToLower(s)
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		if !strings.HasPrefix(fold(p), fold(ps.Prefix)) {
			return false, nil
		}
	case *route.RouteMatch_Path:
		if fold(p) != fold(ps.Path) {
			return false, nil
		}
	case *route.RouteMatch_PathSeparatedPrefix:
		pre := ps.PathSeparatedPrefix
		if fold(p) != fold(pre) && !strings.HasPrefix(fold(p), fold(pre)+"/") {
			return false, nil
		}
	case *route.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + ps.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return false, err
		}
		if !re.MatchString(p) {
			return false, nil
		}
	default:
		return false, fmt.Errorf("unsupported path specifier %T", ps)
	}
	if m.GetGrpc() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 {
		return false, errors.New("unsupported grpc/tls/metadata route match")
	}
	for _, h := range m.GetHeaders() {
		ok, err := headerMatches(h, req)
		if err != nil || !ok {
			return false, err
		}
	}
	if len(m.GetQueryParameters()) > 0 {
		q := url.Values{}
		if i := strings.IndexByte(req.path, '?'); i >= 0 {
			q, _ = url.ParseQuery(req.path[i+1:])
		}
		for _, qm := range m.GetQueryParameters() {
			v, present := q[qm.GetName()]
			switch {
			case qm.GetPresentMatch():
				if !present {
					return false, nil
				}
			case qm.GetStringMatch() != nil:
				if !present || !stringMatches(qm.GetStringMatch(), v[0]) {
					return false, nil
				}
			}
		}
	}
	return true, nil
}

func headerMatches(h *route.HeaderMatcher, req request) (bool, error) {
	v, present := req.header(h.GetName())
	if !present && h.GetTreatMissingHeaderAsEmpty() {
		v, present = "", true
	}
	var ok bool
	switch spec := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		ok = present
	case *route.HeaderMatcher_PresentMatch:
		ok = present == spec.PresentMatch
	case *route.HeaderMatcher_StringMatch:
		ok = present && stringMatches(spec.StringMatch, v)
	case *route.HeaderMatcher_ExactMatch:
		ok = present && v == spec.ExactMatch
	case *route.HeaderMatcher_PrefixMatch:
		ok = present && strings.HasPrefix(v, spec.PrefixMatch)
	case *route.HeaderMatcher_SuffixMatch:
		ok = present && strings.HasSuffix(v, spec.SuffixMatch)
	case *route.HeaderMatcher_ContainsMatch:
		ok = present && strings.Contains(v, spec.ContainsMatch)
	case *route.HeaderMatcher_SafeRegexMatch:
		re, err := regexp.Compile("^(?:" + spec.SafeRegexMatch.GetRegex() + ")$")
		if err != nil {
			return false, err
		}
		ok = present && re.MatchString(v)
	default:
		return false, fmt.Errorf("unsupported header matcher %T on %s", spec, h.GetName())
	}
	if h.GetInvertMatch() {
		// Envoy: an inverted matcher on a missing header still does not match, except
		// for present_match, whose inversion means "absent".
		if _, isPresent := h.GetHeaderMatchSpecifier().(*route.HeaderMatcher_PresentMatch); !present && !isPresent {
			return false, nil
		}
		return !ok, nil
	}
	return ok, nil
}

func stringMatches(m *matcher.StringMatcher, v string) bool {
	if m.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	lower := func(s string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return v == lower(p.Exact)
	case *matcher.StringMatcher_Prefix:
		return strings.HasPrefix(v, lower(p.Prefix))
	case *matcher.StringMatcher_Suffix:
		return strings.HasSuffix(v, lower(p.Suffix))
	case *matcher.StringMatcher_Contains:
		return strings.Contains(v, lower(p.Contains))
	case *matcher.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		return err == nil && re.MatchString(v)
	}
	return false
}

// percent turns Envoy's fractional percent into a percentage.
func percent(f *typev3.FractionalPercent) float64 {
	if f == nil {
		return 0
	}
	d := 100.0
	switch f.GetDenominator() {
	case typev3.FractionalPercent_TEN_THOUSAND:
		d = 10_000
	case typev3.FractionalPercent_MILLION:
		d = 1_000_000
	}
	return float64(f.GetNumerator()) * 100 / d
}

// faultOf decodes the HTTP fault filter configuration attached to a route, nil if none.
func faultOf(r *route.Route) (*fault.HTTPFault, error) {
	a, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.fault"]
	if !ok {
		return nil, nil
	}
	f := &fault.HTTPFault{}
	if err := unwrap(a, f); err != nil {
		return nil, fmt.Errorf("route %q fault config: %w", r.GetName(), err)
	}
	return f, nil
}

// unwrap decodes a typed config, looking through Envoy's FilterConfig wrapper.
func unwrap(a *anypb.Any, into proto.Message) error {
	if a.MessageIs(&route.FilterConfig{}) {
		fc := &route.FilterConfig{}
		if err := a.UnmarshalTo(fc); err != nil {
			return err
		}
		a = fc.GetConfig()
	}
	return a.UnmarshalTo(into)
}

// clusterNamed returns a cluster of the proxy's configuration by name.
func clusterNamed(sim *simulation.Simulation, name string) (*cluster.Cluster, error) {
	c := xdstest.ExtractClusters(sim.Clusters)[name]
	if c == nil {
		return nil, fmt.Errorf("cluster %q not pushed (have %d clusters)", name, len(sim.Clusters))
	}
	return c, nil
}

// inboundChain returns the filter chain of the sidecar's virtualInbound listener that accepts an
// mTLS HTTP connection on port.
func inboundChain(sim *simulation.Simulation, p pod, port int) (*listener.FilterChain, error) {
	return inboundChainFor(sim, p, port, simulation.HTTP)
}

// protocol is how a caller speaks to the port: HTTP for appProtocol http, HTTP/2 for grpc,
// raw TCP otherwise.
func (sp servicePort) protocol() simulation.Protocol {
	switch sp.appProtocol {
	case "http":
		return simulation.HTTP
	case "grpc":
		return simulation.HTTP2
	}
	return simulation.TCP
}

// inboundChainFor returns the filter chain of the sidecar's virtualInbound listener that accepts
// an mTLS connection speaking proto on port.
func inboundChainFor(sim *simulation.Simulation, p pod, port int, proto simulation.Protocol) (*listener.FilterChain, error) {
	res := sim.Run(simulation.Call{
		Address: p.ip, Port: port, Protocol: proto, TLS: simulation.MTLS,
		HostHeader: "inbound", CallMode: simulation.CallModeInbound,
	})
	if res.Error != nil {
		return nil, fmt.Errorf("%s: mTLS %s call to %s:%d: %w", p.name, proto, p.ip, port, res.Error)
	}
	l := xdstest.ExtractListener(model.VirtualInboundListenerName, sim.Listeners)
	for _, fc := range l.GetFilterChains() {
		if fc.GetName() == res.FilterChainMatched {
			return fc, nil
		}
	}
	return nil, fmt.Errorf("%s: filter chain %q not found", p.name, res.FilterChainMatched)
}

// httpConnectionManager decodes the HTTP connection manager of a filter chain.
func httpConnectionManager(fc *listener.FilterChain) (*hcm.HttpConnectionManager, error) {
	for _, f := range fc.GetFilters() {
		if f.GetName() != "envoy.filters.network.http_connection_manager" {
			continue
		}
		h := &hcm.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
			return nil, err
		}
		return h, nil
	}
	return nil, fmt.Errorf("filter chain %q has no HTTP connection manager", fc.GetName())
}

// peer is the caller of an inbound request as RBAC sees it.
type peer struct {
	principal    string // spiffe ID from the client certificate
	method, path string
	port         int
}

// rbacAllows evaluates the RBAC filters of an inbound HTTP connection manager the way Envoy runs
// them: every enforcing DENY filter first, then every enforcing ALLOW filter. Shadow rules are
// ignored because they never reject a request.
func rbacAllows(h *hcm.HttpConnectionManager, p peer) (bool, error) {
	for _, f := range h.GetHttpFilters() {
		if f.GetName() != "envoy.filters.http.rbac" {
			continue
		}
		cfg := &rbachttp.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			return false, err
		}
		if cfg.GetMatcher() != nil {
			return false, errors.New("RBAC matcher API not supported by this evaluator")
		}
		if ok, err := rulesAllow(cfg.GetRules(), p); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// networkRBACAllows evaluates the network RBAC filters (envoy.filters.network.rbac) of a TCP
// filter chain for a new connection, in the same way: Envoy runs the chain's filters in order and
// the first one that denies closes the connection. istiod puts them there for TCP ports, where
// no HTTP connection manager exists. At least one RBAC filter must be present: a chain without
// one would allow everyone, and that is asserted by the expected values, not assumed here.
func networkRBACAllows(fc *listener.FilterChain, p peer) (allowed bool, filters int, err error) {
	for _, f := range fc.GetFilters() {
		if f.GetName() != "envoy.filters.network.rbac" {
			continue
		}
		filters++
		cfg := &rbactcp.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			return false, filters, err
		}
		if cfg.GetMatcher() != nil {
			return false, filters, errors.New("RBAC matcher API not supported by this evaluator")
		}
		if ok, err := rulesAllow(cfg.GetRules(), p); err != nil || !ok {
			return false, filters, err
		}
	}
	return true, filters, nil
}

// rulesAllow applies one RBAC filter's enforcing rules (nil: no enforcing rules, allow).
func rulesAllow(rules *rbacpb.RBAC, p peer) (bool, error) {
	if rules == nil {
		return true, nil
	}
	matched := false
	for name, pol := range rules.GetPolicies() {
		ok, err := policyMatches(pol, p)
		if err != nil {
			return false, fmt.Errorf("policy %s: %w", name, err)
		}
		matched = matched || ok
	}
	switch rules.GetAction() {
	case rbacpb.RBAC_ALLOW:
		return matched, nil
	case rbacpb.RBAC_DENY:
		return !matched, nil
	default:
		return false, fmt.Errorf("unsupported RBAC action %v", rules.GetAction())
	}
}

func policyMatches(pol *rbacpb.Policy, p peer) (bool, error) {
	if pol.GetCondition() != nil || pol.GetCheckedCondition() != nil {
		return false, errors.New("CEL conditions not supported")
	}
	perm := false
	for _, x := range pol.GetPermissions() {
		ok, err := permissionMatches(x, p)
		if err != nil {
			return false, err
		}
		perm = perm || ok
	}
	prin := false
	for _, x := range pol.GetPrincipals() {
		ok, err := principalMatches(x, p)
		if err != nil {
			return false, err
		}
		prin = prin || ok
	}
	return perm && prin, nil
}

func permissionMatches(x *rbacpb.Permission, p peer) (bool, error) {
	req := request{method: p.method, path: p.path}
	switch r := x.GetRule().(type) {
	case *rbacpb.Permission_Any:
		return r.Any, nil
	case *rbacpb.Permission_AndRules:
		for _, y := range r.AndRules.GetRules() {
			ok, err := permissionMatches(y, p)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case *rbacpb.Permission_OrRules:
		for _, y := range r.OrRules.GetRules() {
			ok, err := permissionMatches(y, p)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *rbacpb.Permission_NotRule:
		ok, err := permissionMatches(r.NotRule, p)
		return !ok, err
	case *rbacpb.Permission_Header:
		return headerMatches(r.Header, req)
	case *rbacpb.Permission_UrlPath:
		path := p.path
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		return stringMatches(r.UrlPath.GetPath(), path), nil
	case *rbacpb.Permission_DestinationPort:
		return int(r.DestinationPort) == p.port, nil
	case *rbacpb.Permission_DestinationPortRange:
		return p.port >= int(r.DestinationPortRange.GetStart()) && p.port < int(r.DestinationPortRange.GetEnd()), nil
	}
	return false, fmt.Errorf("unsupported permission %T", x.GetRule())
}

func principalMatches(x *rbacpb.Principal, p peer) (bool, error) {
	switch id := x.GetIdentifier().(type) {
	case *rbacpb.Principal_Any:
		return id.Any, nil
	case *rbacpb.Principal_AndIds:
		for _, y := range id.AndIds.GetIds() {
			ok, err := principalMatches(y, p)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case *rbacpb.Principal_OrIds:
		for _, y := range id.OrIds.GetIds() {
			ok, err := principalMatches(y, p)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *rbacpb.Principal_NotId:
		ok, err := principalMatches(id.NotId, p)
		return !ok, err
	case *rbacpb.Principal_Authenticated_:
		if id.Authenticated.GetPrincipalName() == nil {
			return p.principal != "", nil
		}
		return p.principal != "" && stringMatches(id.Authenticated.GetPrincipalName(), p.principal), nil
	case *rbacpb.Principal_FilterState:
		if id.FilterState.GetKey() != "io.istio.peer_principal" {
			return false, fmt.Errorf("unsupported filter state key %q", id.FilterState.GetKey())
		}
		return p.principal != "" && stringMatches(id.FilterState.GetStringMatch(), p.principal), nil
	case *rbacpb.Principal_Header:
		return headerMatches(id.Header, request{method: p.method, path: p.path})
	}
	return false, fmt.Errorf("unsupported principal %T", x.GetIdentifier())
}

// connectionManagerFor returns the HTTP connection manager that handles call on sim's proxy.
func connectionManagerFor(sim *simulation.Simulation, call simulation.Call) (*hcm.HttpConnectionManager, error) {
	res := sim.Run(call)
	if res.Error != nil {
		return nil, fmt.Errorf("%s:%d: %w", call.HostHeader, call.Port, res.Error)
	}
	l := xdstest.ExtractListener(res.ListenerMatched, sim.Listeners)
	chains := append([]*listener.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...)
	for _, fc := range chains {
		if fc != nil && fc.GetName() == res.FilterChainMatched {
			return httpConnectionManager(fc)
		}
	}
	return nil, fmt.Errorf("filter chain %q not found in listener %s", res.FilterChainMatched, res.ListenerMatched)
}
