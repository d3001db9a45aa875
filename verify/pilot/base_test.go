package pilot

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xdstest"
)

// TestBase covers what every scenario of a flavour inherits from the flavour's base
// (TestBase/<flavour>, the flavours of this process): its checks are flavours[f].base, which
// runScenario also runs in every scenario. With the base routes alone, the Gateway API flavours'
// GAMMA routes send every mesh call to v1.
func TestBase(t *testing.T) {
	for _, f := range processFlavours() {
		t.Run(f.String(), func(t *testing.T) {
			checks := spec(t, f).base()
			if f.GatewayAPIRoutes() {
				checks = append(checks, meshRoutesV1Check())
			}
			runScenario(t, f, "", checks)
		})
	}
}

// baseChecks: what every scenario inherits from istio/sidecar/base: the gateway's Host routing
// and STRICT mutual TLS on every sidecar.

func baseChecks() []check {
	return []check{
		grpcHopsCheck(),
		{
			name: "gateway-routes-host-to-client",
			run:  gatewayRoutesHost,
			broken: []fixture{
				{"virtualservice-without-gateway-host", func(objs []object) error {
					vs, err := virtualServiceFor(objs, "client")
					if err != nil {
						return err
					}
					vs.spec()["hosts"] = []any{fqdn("client")}
					return nil
				}},
				gatewayPortFixture(8080), // same pod listener, but no longer the Service's port 80
				gatewayPortFixture(81),
			},
		},
		{
			name: "gateway-refuses-unknown-host",
			run:  gatewayRefusesUnknownHost,
			broken: []fixture{
				{"wildcard-gateway-and-route", func(objs []object) error {
					gw, err := one(objs, "Gateway", want.gatewayName)
					if err != nil {
						return err
					}
					for _, s := range listAt(gw, "spec", "servers") {
						s.(map[string]any)["hosts"] = []any{"*"}
					}
					vs, err := virtualServiceFor(objs, "client")
					if err != nil {
						return err
					}
					// "*" itself is invalid next to the mesh gateway, and "*.meshdemo" next to
					// client.meshdemo is a duplicate: istiod rejects both.
					vs.spec()["hosts"] = []any{fqdn("client"), "*.meshdemo"}
					return nil
				}},
			},
		},
		{
			name: "user-service-reaches-database-over-mtls-tcp",
			run:  databaseOverTCP,
			broken: []fixture{
				databasePortAsHTTP,
				{"destination-rule-disables-tls", func(objs []object) error {
					// The fixture cannot add an object, so it turns client's DestinationRule into
					// one for the database that turns mutual TLS off.
					dr, err := destinationRuleFor(objs, "client")
					if err != nil {
						return err
					}
					dr["metadata"] = map[string]any{"name": want.database.name, "namespace": namespace}
					dr["spec"] = map[string]any{
						"host":          fqdn(want.database.name),
						"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "DISABLE"}},
					}
					return nil
				}},
			},
		},
		{
			name: "mtls-strict-inbound",
			run:  mtlsStrict,
			broken: []fixture{
				peerAuthPermissive,
			},
		},
	}
}

func gatewayPortFixture(port int) fixture {
	return fixture{fmt.Sprintf("gateway-on-port-%d", port), func(objs []object) error {
		gw, err := one(objs, "Gateway", want.gatewayName)
		if err != nil {
			return err
		}
		for _, s := range listAt(gw, "spec", "servers") {
			setIn(s.(map[string]any), port, "port", "number")
		}
		return nil
	}}
}

// gatewayRoutesHost: the documented Host on the gateway's port 80 (the pod's listener port 8080
// behind the istio-ingressgateway Service) lands on the client's v1 subset.
func gatewayRoutesHost(m *mesh) error {
	r, err := send(m.ingress(), simulation.CallModeGateway, request{
		host: want.gatewayHost, port: m.gatewayListenerPort(), path: "/client/server1",
	})
	if err != nil {
		return fmt.Errorf("gateway Host %s: %w", want.gatewayHost, err)
	}
	got, err := r.cluster()
	if err != nil {
		return err
	}
	if wantC := m.ingressCluster(); got != wantC {
		return fmt.Errorf("gateway Host %s: cluster %s, want %s (%s)", want.gatewayHost, got, wantC, r)
	}
	if wantL := fmt.Sprintf("0.0.0.0_%d", m.gatewayListenerPort()); r.listener != wantL {
		return fmt.Errorf("gateway Host %s: listener %s, want %s", want.gatewayHost, r.listener, wantL)
	}
	// istiod names a gateway virtual host after the Gateway server's port: the one clients dial.
	if wantVH := fmt.Sprintf("%s:%d", want.gatewayHost, want.gatewayPort); r.virtualHost != wantVH {
		return fmt.Errorf("gateway Host %s: virtual host %s, want %s", want.gatewayHost, r.virtualHost, wantVH)
	}
	if err := wantDuration("gateway route timeout", r.route.GetRoute().GetTimeout(), want.gatewayTimeout); err != nil {
		return err
	}
	return nil
}

// gatewayRefusesUnknownHost: any other Host finds no virtual host (Envoy answers 404).
func gatewayRefusesUnknownHost(m *mesh) error {
	for _, host := range []string{"unknown.meshdemo", "server1.meshdemo.svc.cluster.local"} {
		r, err := send(m.ingress(), simulation.CallModeGateway, request{host: host, port: m.gatewayListenerPort(), path: "/"})
		if err == nil {
			return fmt.Errorf("gateway routes unknown Host %s: %s", host, r)
		}
		if !errors.Is(err, simulation.ErrNoVirtualHost) && !errors.Is(err, simulation.ErrNoRoute) {
			return fmt.Errorf("gateway, unknown Host %s: want no virtual host or route, got %w", host, err)
		}
	}
	return nil
}

// mtlsStrict: every sidecar's inbound listener serves each port of the Services in front of its
// pod (the workloads' HTTP port, PostgreSQL's TCP port) to mTLS callers only; a plaintext or
// plain-TLS connection matches no filter chain.
func mtlsStrict(m *mesh) error {
	var errs []error
	for _, p := range m.pods {
		sim := m.simulate(p, sidecarType)
		if len(m.ports[p.name]) == 0 {
			errs = append(errs, fmt.Errorf("%s: no Service selects the pod", p.name))
		}
		for _, sp := range m.ports[p.name] {
			proto := sp.protocol()
			if _, err := inboundChainFor(sim, p, sp.targetPort, proto); err != nil {
				errs = append(errs, err)
				continue
			}
			for _, tls := range []simulation.TLSMode{simulation.Plaintext, simulation.TLS} {
				res := sim.Run(simulation.Call{
					Address: p.ip, Port: sp.targetPort, Protocol: proto, TLS: tls,
					HostHeader: p.labels["app"], CallMode: simulation.CallModeInbound,
				})
				if res.Error == nil {
					errs = append(errs, fmt.Errorf("%s accepts %s %s on port %d (chain %s, cluster %s)",
						p.name, tls, proto, sp.targetPort, res.FilterChainMatched, res.ClusterMatched))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// databaseOverTCP: every user-service version's sidecar sends a connection to the database's
// Service address and port through a TCP proxy (no HTTP connection manager: the PostgreSQL wire
// protocol is not HTTP) to the database's cluster, and that cluster originates Istio mutual TLS
// to injected endpoints (auto mTLS), which the database's STRICT inbound requires.
func databaseOverTCP(m *mesh) error {
	db := want.database
	callers, err := m.workloads(db.callers[0])
	if err != nil {
		return err
	}
	ip, ok := m.services[db.name]
	if !ok {
		return fmt.Errorf("no Service %s rendered", db.name)
	}
	wantCluster := fmt.Sprintf("outbound|%d||%s", db.port, fqdn(db.name))
	var errs []error
	for _, c := range callers {
		sim := m.simulate(c, sidecarType)
		res := sim.Run(simulation.Call{Address: ip, Port: db.port, Protocol: simulation.TCP, CallMode: simulation.CallModeOutbound})
		if res.Error != nil {
			errs = append(errs, fmt.Errorf("%s -> %s:%d: %w", c.name, db.name, db.port, res.Error))
			continue
		}
		if res.ClusterMatched != wantCluster {
			errs = append(errs, fmt.Errorf("%s -> %s:%d: cluster %q, want %s", c.name, db.name, db.port, res.ClusterMatched, wantCluster))
		}
		l := xdstest.ExtractListener(res.ListenerMatched, sim.Listeners)
		for _, fc := range append([]*listener.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...) {
			if fc == nil || fc.GetName() != res.FilterChainMatched {
				continue
			}
			if _, err := httpConnectionManager(fc); err == nil {
				errs = append(errs, fmt.Errorf("%s -> %s:%d: listener %s treats the connection as HTTP", c.name, db.name, db.port, res.ListenerMatched))
			}
		}
		cl, err := clusterNamed(sim, wantCluster)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			continue
		}
		if !slices.ContainsFunc(cl.GetTransportSocketMatches(), func(tm *cluster.Cluster_TransportSocketMatch) bool {
			return tm.GetName() == "tlsMode-istio" && tm.GetTransportSocket() != nil
		}) {
			errs = append(errs, fmt.Errorf("%s: cluster %s does not originate Istio mTLS (no tlsMode-istio transport socket match)", c.name, wantCluster))
		}
	}
	return errors.Join(errs...)
}

// peerAuthPermissive turns the namespace's STRICT mTLS into PERMISSIVE (every flavour).
var peerAuthPermissive = fixture{"peer-authentication-permissive", func(objs []object) error {
	pa, err := one(objs, "PeerAuthentication", want.peerAuthName)
	if err != nil {
		return err
	}
	setIn(pa, "PERMISSIVE", "spec", "mtls", "mode")
	return nil
}}

// databasePortAsHTTP declares PostgreSQL's TCP port as HTTP (every flavour).
var databasePortAsHTTP = fixture{"database-port-as-http", func(objs []object) error {
	svc, err := one(objs, "Service", want.database.name)
	if err != nil {
		return err
	}
	for _, sp := range listAt(svc, "spec", "ports") {
		sp.(map[string]any)["appProtocol"] = "http"
	}
	return nil
}}
