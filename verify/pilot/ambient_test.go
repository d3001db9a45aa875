package pilot

import (
	"fmt"
	"slices"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xdstest"
)

// The ambient flavour has no sidecars: ztunnel carries each call over HBONE to the waypoint of
// the callee's Service, and the waypoint applies the routes. pilot/pkg/simulation cannot enter a
// waypoint (its listener main_internal is an internal listener, reached by ztunnel's CONNECT,
// not by an address), so the waypoint's configuration is read directly: the filter chain
// inbound-vip|<port>|http|<host> of main_internal that serves a Service port, its HTTP
// connection manager, routes, RBAC and clusters (as pilot/pkg/xds/waypoint_test.go does).

const waypointListener = "main_internal"

// waypoint builds the Envoy configuration istiod pushes to the namespace's waypoint.
func (m *mesh) waypoint() *simulation.Simulation {
	return m.simulate(m.wp, model.Waypoint)
}

// waypointHCM is the HTTP connection manager of the waypoint's filter chain with that name.
func waypointHCM(sim *simulation.Simulation, chain string) (*hcm.HttpConnectionManager, error) {
	fc, err := waypointChainFor(sim, chain)
	if err != nil {
		return nil, err
	}
	return httpConnectionManager(fc)
}

// waypointChainFor returns the waypoint's filter chain for a Service port.
func waypointChainFor(sim *simulation.Simulation, name string) (*listener.FilterChain, error) {
	l := xdstest.ExtractListener(waypointListener, sim.Listeners)
	if l == nil {
		return nil, fmt.Errorf("waypoint has no listener %s", waypointListener)
	}
	var have []string
	for _, fc := range l.GetFilterChains() {
		if fc.GetName() == name {
			return fc, nil
		}
		have = append(have, fc.GetName())
	}
	return nil, fmt.Errorf("waypoint listener %s has no filter chain %s (chains: %s)", waypointListener, name, strings.Join(have, " "))
}

// sendWaypoint routes req, a call to Service svc on port, the way the waypoint's chain for that
// Service port does: its connection manager's route configuration, the virtual host for the
// Host, and the first route whose matchers (path, headers, method) all hold.
func sendWaypoint(sim *simulation.Simulation, svc string, req request) (routed, error) {
	name := waypointChain(svc, req.port)
	out := routed{listener: waypointListener + "/" + name}
	fc, err := waypointChainFor(sim, name)
	if err != nil {
		return out, err
	}
	h, err := httpConnectionManager(fc)
	if err != nil {
		return out, err
	}
	rc := h.GetRouteConfig()
	if rc == nil {
		rc = xdstest.ExtractRouteConfigurations(sim.Routes)[h.GetRds().GetRouteConfigName()]
	}
	if rc == nil {
		return out, fmt.Errorf("chain %s: no route configuration", name)
	}
	out.routeConfig = rc.GetName()
	host := strings.Split(req.host, ":")[0]
	var vh *route.VirtualHost
	for _, v := range rc.GetVirtualHosts() {
		if slices.Contains(v.GetDomains(), "*") || slices.Contains(v.GetDomains(), host) || slices.Contains(v.GetDomains(), req.host) {
			vh = v
			break
		}
	}
	if vh == nil {
		return out, fmt.Errorf("chain %s: %w for %s", name, simulation.ErrNoVirtualHost, req.host)
	}
	out.virtualHost = vh.GetName()
	r, err := firstMatchingRoute(vh, req)
	if err != nil {
		return out, err
	}
	if r == nil {
		return out, fmt.Errorf("chain %s %s headers %v: %w (virtual host %s)", name, req.path, req.headers, simulation.ErrNoRoute, vh.GetName())
	}
	out.route = r
	return out, nil
}

// hopProxy is a proxy that routes the calls of a hop: each caller version's sidecar, or the
// callee Service's waypoint in ambient mode (one for every caller).
type hopProxy struct {
	name     string
	pod      pod
	sim      *simulation.Simulation
	waypoint bool
}

// hopProxies are the proxies that route calls from app from.
func (m *mesh) hopProxies(from string) ([]hopProxy, error) {
	if !m.flavour.Sidecars() {
		return []hopProxy{{name: "waypoint (for " + from + ")", pod: m.wp, sim: m.waypoint(), waypoint: true}}, nil
	}
	callers, err := m.workloads(from)
	if err != nil {
		return nil, err
	}
	var out []hopProxy
	for _, c := range callers {
		out = append(out, hopProxy{name: c.name, pod: c, sim: m.simulate(c, sidecarType)})
	}
	return out, nil
}

// route sends req to Service to through the proxy: the sidecar's outbound listeners, or the
// waypoint's chain for the Service port.
func (hp hopProxy) route(to string, req request) (routed, error) {
	if hp.waypoint {
		return sendWaypoint(hp.sim, to, req)
	}
	return send(hp.sim, simulation.CallModeOutbound, req)
}

// proxyType is the node type of the proxy.
func (hp hopProxy) proxyType() model.NodeType {
	if hp.waypoint {
		return model.Waypoint
	}
	return sidecarType
}
