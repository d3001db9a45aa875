package pilot

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"istio.io/istio/pilot/pkg/simulation"
)

// The gRPC side of the call graph: client, server1 and server2 serve meshdemo.chain.v1.Chain on
// the Services' port grpc (50051, appProtocol grpc), and call the next hop on it by short name
// (SERVER1_GRPC_ADDR=server1:50051). A gRPC client keeps one HTTP/2 connection; only if istiod
// treats the port as HTTP/2 does the caller's sidecar route, and balance, each call on its own.

// grpcMethodPath is the :path of the chain's one method.
const grpcMethodPath = "/meshdemo.chain.v1.Chain/Call"

// grpcCall is a gRPC call to service to, as the workloads make it, with metadata (the propagated
// headers a call carries, such as end-user) as HTTP/2 headers.
func (m *mesh) grpcCall(to string, metadata map[string]string) (request, error) {
	ip, ok := m.services[to]
	if !ok {
		return request{}, fmt.Errorf("no Service %s rendered", to)
	}
	headers := map[string]string{"content-type": "application/grpc", "te": "trailers"}
	maps.Copy(headers, metadata)
	return request{
		host: fmt.Sprintf("%s:%d", to, want.grpcPort), address: ip, port: want.grpcPort,
		method: http.MethodPost, path: grpcMethodPath, protocol: simulation.HTTP2,
		headers: headers,
	}, nil
}

// grpcCluster is the cluster a route of the mesh's flavour sends version v of svc's gRPC port to.
func (m *mesh) grpcCluster(svc, version string) string {
	return versionCluster(m.flavour, svc, version, want.grpcPort)
}

// grpcPerRequest: from every caller version, a gRPC call of h goes through an HTTP connection
// manager (not a TCP proxy), is routed to clusters of the gRPC port (not of the HTTP port), and
// leaves over HTTP/2.
func (m *mesh) grpcPerRequest(h hop) error {
	proxies, err := m.hopProxies(h.from)
	if err != nil {
		return err
	}
	req, err := m.grpcCall(h.to, nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, hp := range proxies {
		var hcmErr error
		if hp.waypoint {
			var fc *listener.FilterChain
			if fc, hcmErr = waypointChainFor(hp.sim, waypointChain(h.to, want.grpcPort)); hcmErr == nil {
				_, hcmErr = httpConnectionManager(fc)
			}
		} else {
			_, hcmErr = connectionManagerFor(hp.sim, req.call(simulation.CallModeOutbound))
		}
		if hcmErr != nil {
			errs = append(errs, fmt.Errorf("%s -> %s:%d from %s: not routed per request: %w", h.from, h.to, want.grpcPort, hp.name, hcmErr))
			continue
		}
		r, err := hp.route(h.to, req)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s -> %s from %s: %w", h.from, h.to, hp.name, err))
			continue
		}
		names, err := routeClusters(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s -> %s from %s: %w", h.from, h.to, hp.name, err))
			continue
		}
		for _, name := range names {
			// Whatever subsets a scenario picks (weighted-split: v1 and v2), the call keeps its port.
			if !slices.Contains(m.grpcClusters(h.to), name) {
				errs = append(errs, fmt.Errorf("%s -> %s:%d from %s: routed to cluster %s, want one of %v", h.from, h.to, want.grpcPort, hp.name, name, m.grpcClusters(h.to)))
				continue
			}
			cl, err := clusterNamed(hp.sim, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", hp.name, err))
				continue
			}
			if err := upstreamHTTP2(cl); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", hp.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// grpcClusters are the clusters of svc's gRPC port: the service's and each version subset's.
func (m *mesh) grpcClusters(svc string) []string {
	return []string{m.grpcCluster(svc, ""), m.grpcCluster(svc, "v1"), m.grpcCluster(svc, "v2")}
}

// routeClusters are the clusters a forwarding route sends to: its one cluster or its weighted ones.
func routeClusters(r routed) ([]string, error) {
	a := r.route.GetRoute()
	if a == nil {
		return nil, fmt.Errorf("%s: not a forwarding route (action %T)", r, r.route.GetAction())
	}
	if c := a.GetCluster(); c != "" {
		return []string{c}, nil
	}
	var out []string
	for _, c := range a.GetWeightedClusters().GetClusters() {
		out = append(out, c.GetName())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no cluster", r)
	}
	return out, nil
}

// upstreamHTTP2: the cluster speaks HTTP/2 to the endpoints (Istio's explicit h2 options).
func upstreamHTTP2(cl *cluster.Cluster) error {
	a := cl.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if a == nil {
		return fmt.Errorf("cluster %s has no HTTP protocol options (a TCP cluster)", cl.GetName())
	}
	o := &httpopts.HttpProtocolOptions{}
	if err := a.UnmarshalTo(o); err != nil {
		return fmt.Errorf("cluster %s: %w", cl.GetName(), err)
	}
	if o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		return fmt.Errorf("cluster %s: upstream protocol is not explicitly HTTP/2 (%v)", cl.GetName(), o.GetUpstreamProtocolOptions())
	}
	return nil
}

// grpcPortFixtures break how istiod sees the gRPC port of svc.
func grpcPortFixtures(svc string) []fixture {
	return []fixture{
		{svc + "-grpc-port-declared-tcp", func(objs []object) error {
			s, err := one(objs, "Service", svc)
			if err != nil {
				return err
			}
			for _, p := range listAt(s, "spec", "ports") {
				if pm := p.(map[string]any); intOf(pm["port"]) == want.grpcPort {
					pm["name"], pm["appProtocol"] = "tcp-grpc", "tcp"
					return nil
				}
			}
			return fmt.Errorf("%w: Service %s has no port %d", errNoTarget, svc, want.grpcPort)
		}},
		{svc + "-destination-port-pinned-8080", func(objs []object) error {
			return editRoutes(objs, svc, func(r map[string]any) bool {
				for _, d := range listAt(r, "route") {
					setIn(d.(map[string]any), map[string]any{"number": want.appPort}, "destination", "port")
				}
				return len(listAt(r, "route")) > 0
			})
		}},
	}
}

// grpcHopsCheck is the base promise: every gRPC hop is routed per request and keeps its port.
func grpcHopsCheck() check {
	var broken []fixture
	for _, h := range want.grpcHops {
		broken = append(broken, grpcPortFixtures(h.to)...)
	}
	return grpcHopsCheckNamed("grpc-hops-routed-per-request", broken)
}

// grpcHopsCheckNamed runs the gRPC-hop promise under a flavour's name with its fixtures.
func grpcHopsCheckNamed(name string, broken []fixture) check {
	return check{
		name: name,
		run: func(m *mesh) error {
			var errs []error
			for _, h := range want.grpcHops {
				errs = append(errs, m.grpcPerRequest(h))
			}
			return errors.Join(errs...)
		},
		broken: broken,
	}
}

// grpc-balancing: the caller's sidecar routes each gRPC call on its own and balances calls with
// the configured policy over every server1 v1 replica.
func grpcBalancingChecks(f matrix.Flavour) []check {
	b := want.grpcBalancing
	versions, drHost, portFixtures := b.subsets, b.hop.to, grpcPortFixtures(b.hop.to)
	if f.GatewayAPIRoutes() {
		versions, drHost, portFixtures = b.gatewayVersions, b.hop.to+"-"+b.gatewayVersions[0], gatewayGRPCPortFixtures(b.hop.to)
	}
	lbFixture := func(policy string) fixture {
		return fixture{"lb-" + policy, func(objs []object) error {
			dr, err := destinationRuleFor(objs, drHost)
			if err != nil {
				return err
			}
			if mapAt(dr.spec(), "trafficPolicy", "loadBalancer") == nil {
				return fmt.Errorf("%w: DestinationRule %s has no load balancer to break", errNoTarget, dr.name())
			}
			setIn(dr.spec(), policy, "trafficPolicy", "loadBalancer", "simple")
			return nil
		}}
	}
	checks := []check{
		{
			name: fmt.Sprintf("%s-to-%s-grpc-per-request-%s", b.hop.from, b.hop.to, b.lbPolicy),
			run: func(m *mesh) error {
				if err := m.grpcPerRequest(b.hop); err != nil {
					return err
				}
				if err := m.eachGrpcRoute(b.hop, nil, func(r routed) error { return wantCluster(r, m.grpcCluster(b.hop.to, "v1")) }); err != nil {
					return err
				}
				callers, err := m.hopProxies(b.hop.from)
				if err != nil {
					return err
				}
				var errs []error
				for _, c := range callers {
					sim := c.sim
					for _, subset := range versions {
						for _, name := range []string{m.grpcCluster(b.hop.to, subset), m.cluster(b.hop.to, subset)} {
							cl, err := clusterNamed(sim, name)
							if err != nil {
								errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
								continue
							}
							if got := cl.GetLbPolicy().String(); got != b.lbPolicy {
								errs = append(errs, fmt.Errorf("%s: cluster %s balances with %s, want %s", c.name, name, got, b.lbPolicy))
							}
						}
					}
				}
				return errors.Join(errs...)
			},
			// Istio's default policy is LEAST_REQUEST too, so dropping the DestinationRule's load
			// balancer changes nothing: the fixtures name other policies.
			broken: append(portFixtures, lbFixture("ROUND_ROBIN"), lbFixture("RANDOM")),
		},
		{
			name: fmt.Sprintf("%s-v1-grpc-endpoints", b.hop.to),
			run: func(m *mesh) error {
				callers, err := m.hopProxies(b.hop.from)
				if err != nil {
					return err
				}
				name := m.grpcCluster(b.hop.to, "v1")
				for _, cla := range m.fds.Endpoints(m.proxy(callers[0].pod, callers[0].proxyType())) {
					if cla.GetClusterName() != name {
						continue
					}
					addrs := map[string]bool{}
					for _, le := range cla.GetEndpoints() {
						for _, e := range le.GetLbEndpoints() {
							if e.GetHealthStatus() != core.HealthStatus_HEALTHY && e.GetHealthStatus() != core.HealthStatus_UNKNOWN {
								continue
							}
							addr, port, err := endpointAddress(e.GetEndpoint().GetAddress())
							if err != nil {
								return fmt.Errorf("EDS for %s: %w", name, err)
							}
							if port != want.grpcPort {
								return fmt.Errorf("EDS for %s: endpoint %s on port %d, want %d", name, addr, port, want.grpcPort)
							}
							addrs[addr] = true
						}
					}
					if len(addrs) != b.v1Replicas {
						return fmt.Errorf("EDS for %s has %d healthy endpoints, want %d", name, len(addrs), b.v1Replicas)
					}
					return nil
				}
				return fmt.Errorf("no EDS assignment for %s", name)
			},
			broken: []fixture{
				{"one-replica", func(objs []object) error {
					d, err := one(objs, "Deployment", b.hop.to+"-v1")
					if err != nil {
						return err
					}
					setIn(d, 1, "spec", "replicas")
					return nil
				}},
			},
		},
	}
	if f.GatewayAPIRoutes() {
		checks = append(checks, grpcSplitCheck(f, b.gatewayGRPCSplit))
	}
	return checks
}

// grpcSplitCheck: the gRPC route of the hop splits calls over the versions with the weights.
func grpcSplitCheck(f matrix.Flavour, s split) check {
	return check{
		name: fmt.Sprintf("%s-to-%s-grpc-weights", s.hop.from, s.hop.to),
		run: func(m *mesh) error {
			wantW := map[string]uint32{}
			for v, w := range s.weights {
				wantW[m.grpcCluster(s.hop.to, v)] = w
			}
			return m.eachGrpcRoute(s.hop, nil, func(r routed) error {
				if got := weights(r.route.GetRoute()); !maps.Equal(got, wantW) {
					return fmt.Errorf("weighted clusters %v (single cluster %q), want %v", got, r.route.GetRoute().GetCluster(), wantW)
				}
				return nil
			})
		},
		broken: byAPI(f, []fixture{virtualServiceHTTPPortOnly(s.hop.to)}, []fixture{
			// Weights no scenario uses, so the fixture breaks every split it is run on.
			{"weights-10-90", func(objs []object) error {
				return editRules(objs, "GRPCRoute", grpcRouteName(s.hop.to, objs), func(r map[string]any) bool {
					refs := listAt(r, "backendRefs")
					for i, b := range refs {
						b.(map[string]any)["weight"] = []int{10, 90}[min(i, 1)]
					}
					return len(refs) == 2
				})
			}},
			{"v1-only", func(objs []object) error {
				return editRules(objs, "GRPCRoute", grpcRouteName(s.hop.to, objs), func(r map[string]any) bool {
					refs := listAt(r, "backendRefs")
					if len(refs) < 2 {
						return false
					}
					r["backendRefs"] = refs[:1]
					return true
				})
			}},
		}),
	}
}

// gatewayGRPCPortFixtures break how istiod sees the gRPC port of svc in the Gateway API flavours.
func gatewayGRPCPortFixtures(svc string) []fixture {
	return []fixture{
		grpcPortFixtures(svc)[0],
		{svc + "-grpcroute-backend-port-8080", func(objs []object) error {
			return editRules(objs, "GRPCRoute", grpcRouteName(svc, objs), func(r map[string]any) bool {
				return setBackends(r, svc+"-v1", want.appPort)
			})
		}},
	}
}

// eachGrpcRoute runs fn on the route every caller version picks for a gRPC call of h with
// metadata.
func (m *mesh) eachGrpcRoute(h hop, metadata map[string]string, fn func(r routed) error) error {
	proxies, err := m.hopProxies(h.from)
	if err != nil {
		return err
	}
	req, err := m.grpcCall(h.to, metadata)
	if err != nil {
		return err
	}
	var errs []error
	for _, hp := range proxies {
		r, err := hp.route(h.to, req)
		if err == nil {
			err = fn(r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s -> %s:%d from %s: %w", h.from, h.to, want.grpcPort, hp.name, err))
		}
	}
	return errors.Join(errs...)
}

// endpointAddress is the pod address and port of an EDS endpoint: a socket address (sidecars), or
// the endpoint id of an Envoy internal address, the pod the waypoint tunnels to over HBONE.
func endpointAddress(a *core.Address) (string, int, error) {
	if sa := a.GetSocketAddress(); sa != nil {
		return sa.GetAddress(), int(sa.GetPortValue()), nil
	}
	if ia := a.GetEnvoyInternalAddress(); ia != nil {
		host, port, err := net.SplitHostPort(ia.GetEndpointId())
		if err != nil {
			return "", 0, fmt.Errorf("internal address endpoint id %q: %w", ia.GetEndpointId(), err)
		}
		p, err := strconv.Atoi(port)
		return host, p, err
	}
	return "", 0, fmt.Errorf("endpoint address %v is neither a socket nor an internal address", a)
}
