package pilot

import (
	"errors"
	"fmt"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// The gRPC chain (GET /client/grpc) under the routing scenarios: the calls on the Services' port
// grpc (50051) get the scenario's header routes, weights and mirror too. In the sidecar flavour
// the VirtualServices have no port match, so their routes are the gRPC port's as well; in the
// Gateway API flavours the GRPCRoutes server1-grpc and server2-grpc carry the same rules
// (GRPCHeaderMatch, backendRef weights, the RequestMirror filter), which istiod converts in
// pilot/pkg/config/kube/gateway/conversion.go convertGRPCRoute. Timeouts and retries have no
// GRPCRoute field (sigs.k8s.io/gateway-api v1.6.0 apis/v1 GRPCRouteRule), so those scenarios leave
// the GRPCRoutes alone (docs/flavours.md, "The gRPC chain").

// grpcHeaderRoutingCheck: a gRPC call with header=value as metadata reaches v2 on the gRPC port,
// without it or with another value v1.
func grpcHeaderRoutingCheck(f matrix.Flavour, hr headerRoute) check {
	return check{
		name: fmt.Sprintf("%s-to-%s-grpc-%s", hr.hop.from, hr.hop.to, hr.header),
		run: func(m *mesh) error {
			var errs []error
			for _, c := range hr.cases() {
				errs = append(errs, m.eachGrpcRoute(hr.hop, c.headers, func(r routed) error {
					if err := wantCluster(r, m.grpcCluster(hr.hop.to, c.version)); err != nil {
						return fmt.Errorf("metadata %v: %w", c.headers, err)
					}
					return nil
				}))
			}
			return errors.Join(errs...)
		},
		broken: byAPI(f, []fixture{virtualServiceHTTPPortOnly(hr.hop.to)}, []fixture{
			{"grpc-header-value-changed", editGRPCRules(hr.hop.to, headerValueChanged(hr.header))},
			{"grpc-header-route-to-v1", editGRPCRules(hr.hop.to, func(r map[string]any) bool {
				return ruleMatchesHeader(r) && setBackends(r, hr.hop.to+"-v1", want.grpcPort)
			})},
		}),
	}
}

// grpcMirrorCheck: the gRPC route of the hop keeps the calls on routeSubset and mirrors them, at
// the percentage, to mirrorSubset's gRPC port.
func grpcMirrorCheck(f matrix.Flavour, mp mirrorPolicy) check {
	return check{
		name: fmt.Sprintf("%s-to-%s-grpc-mirror", mp.hop.from, mp.hop.to),
		run: func(m *mesh) error {
			return m.eachGrpcRoute(mp.hop, nil, func(r routed) error {
				return wantMirror(r, m.grpcCluster(mp.hop.to, mp.routeSubset), m.grpcCluster(mp.hop.to, mp.mirrorSubset), mp.pct)
			})
		},
		broken: byAPI(f, []fixture{virtualServiceHTTPPortOnly(mp.hop.to)}, []fixture{
			{"grpc-mirror-to-v1", editMirrorOf("GRPCRoute", mp.hop.to, func(rm map[string]any) {
				setIn(rm, mp.hop.to+"-"+mp.routeSubset, "backendRef", "name")
			})},
			{"grpc-mirror-to-http-port", editMirrorOf("GRPCRoute", mp.hop.to, func(rm map[string]any) {
				setIn(rm, want.appPort, "backendRef", "port")
			})},
			{"grpc-mirror-percent-10", editMirrorOf("GRPCRoute", mp.hop.to, func(rm map[string]any) { rm["percent"] = 10 })},
			{"grpc-mirror-removed", editGRPCRules(mp.hop.to, func(r map[string]any) bool { return deleteIn(r, "filters") })},
		}),
	}
}

// editGRPCRules applies edit to every rule of the GRPCRoute whose parent is Service svc.
func editGRPCRules(svc string, edit func(r map[string]any) bool) func(objs []object) error {
	return func(objs []object) error { return editRules(objs, "GRPCRoute", grpcRouteName(svc, objs), edit) }
}

// virtualServiceHTTPPortOnly restricts every http route of svc's VirtualService to the HTTP port
// (a port match), the one thing that would keep the sidecar flavour's scenario off the gRPC port.
func virtualServiceHTTPPortOnly(svc string) fixture {
	return fixture{"virtualservice-http-port-only", func(objs []object) error {
		return editRoutes(objs, svc, func(r map[string]any) bool {
			matches := listAt(r, "match")
			if len(matches) == 0 {
				r["match"] = []any{map[string]any{"port": want.appPort}}
				return true
			}
			for _, mt := range matches {
				mt.(map[string]any)["port"] = want.appPort
			}
			return true
		})
	}}
}
