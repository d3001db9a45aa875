package pilot

import (
	"errors"
	"fmt"
	"testing"

	"istio.io/istio/pilot/pkg/simulation"
)

// TestBase covers what every scenario inherits from istio/base: the gateway's Host routing and
// STRICT mutual TLS on every sidecar.
func TestBase(t *testing.T) {
	runScenario(t, "", baseChecks())
}

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
			name: "mtls-strict-inbound",
			run:  mtlsStrict,
			broken: []fixture{
				{"peer-authentication-permissive", func(objs []object) error {
					pa, err := one(objs, "PeerAuthentication", want.peerAuthName)
					if err != nil {
						return err
					}
					setIn(pa, "PERMISSIVE", "spec", "mtls", "mode")
					return nil
				}},
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
		host: want.gatewayHost, port: want.gatewayListenerPort, path: "/client/server1",
	})
	if err != nil {
		return fmt.Errorf("gateway Host %s: %w", want.gatewayHost, err)
	}
	got, err := r.cluster()
	if err != nil {
		return err
	}
	if wantC := subsetCluster("client", "v1"); got != wantC {
		return fmt.Errorf("gateway Host %s: cluster %s, want %s (%s)", want.gatewayHost, got, wantC, r)
	}
	if wantL := fmt.Sprintf("0.0.0.0_%d", want.gatewayListenerPort); r.listener != wantL {
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
		r, err := send(m.ingress(), simulation.CallModeGateway, request{host: host, port: want.gatewayListenerPort, path: "/"})
		if err == nil {
			return fmt.Errorf("gateway routes unknown Host %s: %s", host, r)
		}
		if !errors.Is(err, simulation.ErrNoVirtualHost) && !errors.Is(err, simulation.ErrNoRoute) {
			return fmt.Errorf("gateway, unknown Host %s: want no virtual host or route, got %w", host, err)
		}
	}
	return nil
}

// mtlsStrict: every sidecar's inbound listener serves the public port to mTLS callers only; a
// plaintext connection matches no filter chain.
func mtlsStrict(m *mesh) error {
	var errs []error
	for _, p := range m.pods {
		sim := m.simulate(p, sidecarType)
		if _, err := inboundChain(sim, p, want.appPort); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, tls := range []simulation.TLSMode{simulation.Plaintext, simulation.TLS} {
			res := sim.Run(simulation.Call{
				Address: p.ip, Port: want.appPort, Protocol: simulation.HTTP, TLS: tls,
				HostHeader: p.labels["app"], CallMode: simulation.CallModeInbound,
			})
			if res.Error == nil {
				errs = append(errs, fmt.Errorf("%s accepts %s HTTP on port %d (chain %s, cluster %s)",
					p.name, tls, want.appPort, res.FilterChainMatched, res.ClusterMatched))
			}
		}
	}
	return errors.Join(errs...)
}
