package pilot

import (
	"errors"
	"fmt"
)

// meshHops are the calls the base routes send to v1 only: HTTP hops and gRPC hops.
var meshHops = []hop{{"client", "server1"}, {"client", "user-service"}, {"server1", "server2"}}

// gatewayAPIBaseChecks: what every gateway-api scenario inherits from istio/gateway-api/base:
// the Gateway API gateway's Host routing, gRPC routed per request, the database over mTLS and
// STRICT mutual TLS on every sidecar.
func gatewayAPIBaseChecks() []check {
	return append(gatewayAPIIngressChecks(), []check{
		grpcHopsCheckNamed("grpc-hops-routed-per-request", gatewayGRPCHopFixtures()),
		// the Gateway API ingress and the absence of the Istio routing API
		{
			name: "user-service-reaches-database-over-mtls-tcp",
			run:  databaseOverTCP,
			broken: []fixture{
				databasePortAsHTTP,
				{"destination-rule-disables-tls", func(objs []object) error {
					return turnInto(objs, "HTTPRoute", "client", object{
						"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
						"metadata": map[string]any{"name": want.database.name, "namespace": namespace},
						"spec": map[string]any{
							"host":          fqdn(want.database.name),
							"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "DISABLE"}},
						},
					})
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
	}...)
}

// gatewayAPIIngressChecks: the Gateway API gateway in istio-ingress serves the documented Host
// (and nothing else) through the HTTPRoute client, and no VirtualService or Istio Gateway is in
// the render. Shared by both Gateway API flavours.
func gatewayAPIIngressChecks() []check {
	return []check{
		{
			name: "gateway-routes-host-to-client",
			run:  gatewayRoutesHost,
			broken: []fixture{
				{"httproute-without-gateway-host", func(objs []object) error {
					rt, err := one(objs, "HTTPRoute", "client")
					if err != nil {
						return err
					}
					rt.spec()["hostnames"] = []any{"other.meshdemo"}
					return nil
				}},
				{"httproute-timeout-removed", func(objs []object) error {
					return editRules(objs, "HTTPRoute", "client", func(r map[string]any) bool { return deleteIn(r, "timeouts") })
				}},
				{"gateway-listener-port-8080", func(objs []object) error {
					gw, err := one(objs, "Gateway", want.gatewayName)
					if err != nil {
						return err
					}
					for _, l := range listAt(gw, "spec", "listeners") {
						l.(map[string]any)["port"] = 8080
					}
					return nil
				}},
				{"allowed-routes-same-namespace", func(objs []object) error {
					gw, err := one(objs, "Gateway", want.gatewayName)
					if err != nil {
						return err
					}
					for _, l := range listAt(gw, "spec", "listeners") {
						setIn(l.(map[string]any), map[string]any{"from": "Same"}, "allowedRoutes", "namespaces")
					}
					return nil
				}},
			},
		},
		{
			name: "gateway-refuses-unknown-host",
			run:  gatewayRefusesUnknownHost,
			broken: []fixture{
				{"listener-and-route-any-host", func(objs []object) error {
					gw, err := one(objs, "Gateway", want.gatewayName)
					if err != nil {
						return err
					}
					for _, l := range listAt(gw, "spec", "listeners") {
						delete(l.(map[string]any), "hostname")
					}
					rt, err := one(objs, "HTTPRoute", "client")
					if err != nil {
						return err
					}
					delete(rt.spec(), "hostnames")
					return nil
				}},
			},
		},
		{
			name: "no-istio-routing-api",
			run:  noIstioRoutingAPI,
			broken: []fixture{
				{"client-route-as-virtualservice", func(objs []object) error {
					return turnInto(objs, "HTTPRoute", "client", object{
						"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
						"metadata": map[string]any{"name": "client", "namespace": namespace},
						"spec": map[string]any{"hosts": []any{fqdn("client")}, "http": []any{map[string]any{
							"route": []any{map[string]any{"destination": map[string]any{"host": fqdn("client")}}},
						}}},
					})
				}},
			},
		},
	}
}

// grpcRouteName is the name of the GRPCRoute whose parent is Service svc.
func grpcRouteName(svc string, objs []object) string {
	for _, o := range findObjects(objs, "GRPCRoute", nil) {
		for _, p := range listAt(o, "spec", "parentRefs") {
			if str(p.(map[string]any), "name") == svc {
				return o.name()
			}
		}
	}
	return svc
}

// meshRoutesV1: every caller's route for each base hop names the callee's v1 (HTTP and gRPC),
// as istio/sidecar/base's VirtualServices do with subset v1.
func meshRoutesV1(m *mesh) error {
	var errs []error
	for _, h := range meshHops {
		errs = append(errs, m.eachRoute(h, nil, func(r hopRoute) error { return wantCluster(r.routed, m.cluster(h.to, "v1")) }))
	}
	for _, h := range want.grpcHops {
		errs = append(errs, m.eachGrpcRoute(h, nil, func(r routed) error { return wantCluster(r, m.grpcCluster(h.to, "v1")) }))
	}
	return errors.Join(errs...)
}

// noIstioRoutingAPI: the Gateway API flavours route with the Gateway API alone.
func noIstioRoutingAPI(m *mesh) error {
	var errs []error
	for _, o := range m.objs {
		if o.isIstio() && (o.kind() == "VirtualService" || o.kind() == "Gateway") {
			errs = append(errs, fmt.Errorf("render has %s %s/%s (%s)", o.kind(), o.namespace(), o.name(), o.apiVersion()))
		}
	}
	return errors.Join(errs...)
}

// meshRoutesV1Check is the base's routing promise: without a scenario, every hop goes to v1.
// Scenarios change exactly that (weighted-split, grpc-balancing), so it is not inherited.
func meshRoutesV1Check() check {
	return check{
		name: "mesh-routes-send-v1-only",
		run:  meshRoutesV1,
		broken: []fixture{
			{"httproute-server2-to-v2", func(objs []object) error {
				return editRules(objs, "HTTPRoute", "server2", func(r map[string]any) bool {
					return setBackends(r, "server2-v2", want.appPort)
				})
			}},
			{"httproute-user-service-removed", func(objs []object) error {
				return removeObjects(objs, "HTTPRoute", func(o object) bool { return o.name() == "user-service" })
			}},
			{"grpcroute-server1-to-v2", func(objs []object) error {
				return editRules(objs, "GRPCRoute", grpcRouteName("server1", objs), func(r map[string]any) bool {
					return setBackends(r, "server1-v2", want.grpcPort)
				})
			}},
			{"grpcroute-named-like-its-httproute", func(objs []object) error {
				// istiod keys the VirtualService it derives from a mesh route by the route's
				// namespace and name: a GRPCRoute named like the Service's HTTPRoute is
				// silently dropped.
				rt, err := one(objs, "GRPCRoute", grpcRouteName("server1", objs))
				if err != nil {
					return err
				}
				if rt.name() == "server1" {
					return fmt.Errorf("%w: GRPCRoute already named server1", errNoTarget)
				}
				setIn(rt, "server1", "metadata", "name")
				return nil
			}},
		},
	}
}

// gatewayGRPCHopFixtures break the gRPC hops of the Gateway API flavours: the port declared TCP,
// or the GRPCRoute sending server2's gRPC to its HTTP port.
func gatewayGRPCHopFixtures() []fixture {
	return []fixture{
		{"server1-grpc-port-declared-tcp", grpcPortFixtures("server1")[0].mutate},
		{"grpcroute-backend-port-8080", func(objs []object) error {
			return editRules(objs, "GRPCRoute", grpcRouteName("server2", objs), func(r map[string]any) bool {
				return setBackends(r, "server2-v1", want.appPort)
			})
		}},
	}
}
