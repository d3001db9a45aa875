package pilot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"istio.io/istio/pilot/pkg/simulation"
)

// outlier-detection: connection pool and outlier detection on every cluster of the service.
func outlierChecks(f matrix.Flavour) []check {
	tp := want.outlier
	versions := tp.subsets
	drHost := tp.hop.to
	if f.GatewayAPIRoutes() {
		versions, drHost = tp.gatewayVersions, tp.hop.to+"-"+tp.gatewayVersions[0]
	}
	editDR := func(edit func(spec map[string]any) bool) func(objs []object) error {
		return func(objs []object) error {
			dr, err := destinationRuleFor(objs, drHost)
			if err != nil {
				return err
			}
			if !edit(dr.spec()) {
				return fmt.Errorf("%w: DestinationRule %s has no traffic policy to break", errNoTarget, dr.name())
			}
			return nil
		}
	}
	return []check{
		{
			name: fmt.Sprintf("%s-clusters-pool-and-outlier", tp.hop.to),
			run: func(m *mesh) error {
				proxies, err := m.hopProxies(tp.hop.from)
				if err != nil {
					return err
				}
				var errs []error
				for _, c := range proxies {
					sim := c.sim
					for _, subset := range versions {
						name := m.cluster(tp.hop.to, subset)
						cl, err := clusterNamed(sim, name)
						if err != nil {
							errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
							continue
						}
						if err := clusterPolicy(cl.GetCircuitBreakers(), cl.GetOutlierDetection(), cl.GetConnectTimeout().AsDuration(), tp); err != nil {
							errs = append(errs, fmt.Errorf("%s: cluster %s: %w", c.name, name, err))
						}
					}
				}
				return errors.Join(errs...)
			},
			broken: []fixture{
				{"consecutive-5xx-7", editDR(func(s map[string]any) bool {
					if mapAt(s, "trafficPolicy", "outlierDetection") == nil {
						return false
					}
					setIn(s, 7, "trafficPolicy", "outlierDetection", "consecutive5xxErrors")
					return true
				})},
				{"max-connections-100", editDR(func(s map[string]any) bool {
					if mapAt(s, "trafficPolicy", "connectionPool", "tcp") == nil {
						return false
					}
					setIn(s, 100, "trafficPolicy", "connectionPool", "tcp", "maxConnections")
					return true
				})},
				{"traffic-policy-removed", editDR(func(s map[string]any) bool { return deleteIn(s, "trafficPolicy") })},
			},
		},
		{
			name: fmt.Sprintf("%s-v1-endpoints", tp.hop.to),
			run: func(m *mesh) error {
				if got := m.replicas(tp.hop.to, "v1"); got != tp.v1Replicas {
					return fmt.Errorf("%s v1 has %d pods, want %d", tp.hop.to, got, tp.v1Replicas)
				}
				proxies, err := m.hopProxies(tp.hop.from)
				if err != nil {
					return err
				}
				name := m.cluster(tp.hop.to, "v1")
				for _, cla := range m.fds.Endpoints(m.proxy(proxies[0].pod, proxies[0].proxyType())) {
					if cla.GetClusterName() != name {
						continue
					}
					n := 0
					for _, le := range cla.GetEndpoints() {
						for _, e := range le.GetLbEndpoints() {
							if e.GetHealthStatus() == core.HealthStatus_HEALTHY || e.GetHealthStatus() == core.HealthStatus_UNKNOWN {
								n++
							}
						}
					}
					if n != tp.v1Replicas {
						return fmt.Errorf("EDS for %s has %d healthy endpoints, want %d (ejecting %d%% must leave one)",
							name, n, tp.v1Replicas, tp.maxEjectionPercent)
					}
					return nil
				}
				return fmt.Errorf("no EDS assignment for %s", name)
			},
			broken: []fixture{
				{"one-replica", func(objs []object) error {
					d, err := one(objs, "Deployment", tp.hop.to+"-v1")
					if err != nil {
						return err
					}
					setIn(d, 1, "spec", "replicas")
					return nil
				}},
			},
		},
	}
}

// mirroring: the route keeps answering from one subset and mirrors to another.
func mirroringChecks(f matrix.Flavour) []check {
	mp := want.mirror
	edit := func(f func(r map[string]any) bool) func(objs []object) error {
		return func(objs []object) error { return editRoutes(objs, mp.hop.to, f) }
	}
	return []check{{
		name: fmt.Sprintf("%s-to-%s-mirror", mp.hop.from, mp.hop.to),
		run: func(m *mesh) error {
			return m.eachRoute(mp.hop, nil, func(r hopRoute) error {
				return wantMirror(r.routed, m.cluster(mp.hop.to, mp.routeSubset), m.cluster(mp.hop.to, mp.mirrorSubset), mp.pct)
			})
		},
		broken: byAPI(f, []fixture{
			{"mirror-to-v1", edit(func(r map[string]any) bool {
				if mapAt(r, "mirror") == nil {
					return false
				}
				setIn(r, "v1", "mirror", "subset")
				return true
			})},
			{"mirror-percentage-10", edit(func(r map[string]any) bool {
				if mapAt(r, "mirror") == nil {
					return false
				}
				r["mirrorPercentage"] = map[string]any{"value": 10}
				return true
			})},
			{"mirror-removed", edit(func(r map[string]any) bool { return deleteIn(r, "mirror") })},
		}, []fixture{
			{"mirror-to-v1", editMirror(mp.hop.to, func(rm map[string]any) { setIn(rm, mp.hop.to+"-"+mp.routeSubset, "backendRef", "name") })},
			{"mirror-percent-10", editMirror(mp.hop.to, func(rm map[string]any) { rm["percent"] = 10 })},
			{"mirror-removed", func(objs []object) error {
				return editRules(objs, "HTTPRoute", mp.hop.to, func(r map[string]any) bool { return deleteIn(r, "filters") })
			}},
		}),
	}, grpcMirrorCheck(f, want.grpcRoutes.mirror)}
}

// editMirror edits the RequestMirror filter of the HTTPRoute for svc.
func editMirror(svc string, edit func(rm map[string]any)) func(objs []object) error {
	return editMirrorOf("HTTPRoute", svc, edit)
}

// editMirrorOf edits the RequestMirror filter of the route of kind (HTTPRoute, GRPCRoute) whose
// parent is Service svc.
func editMirrorOf(kind, svc string, edit func(rm map[string]any)) func(objs []object) error {
	return func(objs []object) error {
		name := svc
		if kind == "GRPCRoute" {
			name = grpcRouteName(svc, objs)
		}
		return editRules(objs, kind, name, func(r map[string]any) bool {
			changed := false
			for _, fl := range listAt(r, "filters") {
				if rm := mapAt(fl.(map[string]any), "requestMirror"); rm != nil {
					edit(rm)
					changed = true
				}
			}
			return changed
		})
	}
}

// authz: on every workload's inbound port, the RBAC filters allow exactly the intended callers
// (by mTLS identity) and deny every other identity of the mesh and a look-alike from another
// namespace.
func authzChecks(f matrix.Flavour) []check {
	return []check{{
		name: "rbac-allows-exactly-the-call-graph",
		run:  rbacCallGraph,
		broken: []fixture{
			{"server1-allows-server2", func(objs []object) error {
				ap, err := one(objs, "AuthorizationPolicy", "server1")
				if err != nil {
					return err
				}
				for _, rule := range listAt(ap, "spec", "rules") {
					for _, from := range listAt(rule.(map[string]any), "from") {
						setIn(from.(map[string]any), []any{"cluster.local/ns/meshdemo/sa/server2"}, "source", "principals")
					}
				}
				return nil
			}},
			{"policies-removed", func(objs []object) error {
				return removeObjects(objs, "AuthorizationPolicy", nil)
			}},
			{"client-policy-any-namespace", func(objs []object) error {
				ap, err := one(objs, "AuthorizationPolicy", "client")
				if err != nil {
					return err
				}
				ap["spec"].(map[string]any)["rules"] = []any{map[string]any{"from": []any{map[string]any{
					"source": map[string]any{"principals": []any{"*/sa/" + flavours[f].ingress().pod.serviceAccount}},
				}}}}
				return nil
			}},
		},
	}, {
		name: fmt.Sprintf("rbac-%s-tcp-%d-only-%s", want.database.name, want.database.port, strings.Join(want.database.callers, "-")),
		run:  rbacDatabase,
		broken: []fixture{
			editDatabasePolicy("principal-client", func(spec map[string]any) bool {
				for _, rule := range listAt(spec, "rules") {
					for _, from := range listAt(rule.(map[string]any), "from") {
						setIn(from.(map[string]any), []any{"cluster.local/ns/meshdemo/sa/client"}, "source", "principals")
					}
				}
				return true
			}),
			// An HTTP field makes istiod drop the rule from the TCP chain: user-service is denied.
			editDatabasePolicy("rule-with-http-method", func(spec map[string]any) bool {
				changed := false
				for _, rule := range listAt(spec, "rules") {
					for _, to := range listAt(rule.(map[string]any), "to") {
						setIn(to.(map[string]any), []any{"GET"}, "operation", "methods")
						changed = true
					}
				}
				return changed
			}),
			editDatabasePolicy("selector-misses-the-pod", func(spec map[string]any) bool {
				setIn(spec, map[string]any{"app": "database"}, "selector", "matchLabels")
				return true
			}),
			editDatabasePolicy("other-port", func(spec map[string]any) bool {
				changed := false
				for _, rule := range listAt(spec, "rules") {
					for _, to := range listAt(rule.(map[string]any), "to") {
						setIn(to.(map[string]any), []any{"5433"}, "operation", "ports")
						changed = true
					}
				}
				return changed
			}),
			{"allow-nothing-removed-and-policy-any-principal", func(objs []object) error {
				if err := removeObjects(objs, "AuthorizationPolicy", func(o object) bool { return o.name() == "allow-nothing" }); err != nil {
					return err
				}
				ap, err := one(objs, "AuthorizationPolicy", want.database.name)
				if err != nil {
					return err
				}
				ap["spec"].(map[string]any)["rules"] = []any{map[string]any{}}
				return nil
			}},
		},
	}}
}

// editDatabasePolicy breaks the AuthorizationPolicy named after the database.
func editDatabasePolicy(name string, edit func(spec map[string]any) bool) fixture {
	return fixture{name, func(objs []object) error {
		ap, err := one(objs, "AuthorizationPolicy", want.database.name)
		if err != nil {
			return err
		}
		if !edit(ap.spec()) {
			return fmt.Errorf("%w: AuthorizationPolicy %s has no rule to break", errNoTarget, ap.name())
		}
		return nil
	}}
}

// rbacDatabase: the database's inbound TCP chain on its port carries network RBAC filters that
// let a connection from user-service's identity through and close one from every other
// identity (the other workloads, the database's own account, a look-alike gateway).
func rbacDatabase(m *mesh) error {
	db := want.database
	pods, err := m.workloads(db.name)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		fc, err := inboundChainFor(m.simulate(p, sidecarType), p, db.port, simulation.TCP)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := httpConnectionManager(fc); err == nil {
			errs = append(errs, fmt.Errorf("%s: port %d is served by an HTTP connection manager, want a TCP proxy", p.name, db.port))
			continue
		}
		for name, id := range m.identities() {
			ok, n, err := networkRBACAllows(fc, peer{principal: id, port: db.port})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
				continue
			}
			if n == 0 {
				errs = append(errs, fmt.Errorf("%s: filter chain %s on port %d has no network RBAC filter", p.name, fc.GetName(), db.port))
				break
			}
			if wantOK := slices.Contains(db.callers, name); ok != wantOK {
				errs = append(errs, fmt.Errorf("%s:%d allows %s (%s): %v, want %v", p.name, db.port, name, id, ok, wantOK))
			}
		}
	}
	return errors.Join(errs...)
}

// identities are the callers the RBAC checks try: every identity that exists in the mesh, plus
// one that only looks like the gateway.
func (m *mesh) identities() map[string]string {
	callers := map[string]string{
		ingressCaller:     m.gateway.identity(),
		"foreign-gateway": spiffeID("other", m.gateway.serviceAccount),
	}
	for _, p := range m.pods {
		callers[p.labels["app"]] = p.identity()
	}
	return callers
}

func rbacCallGraph(m *mesh) error {
	callers := m.identities()
	var errs []error
	for callee, allowed := range want.authzAllowed {
		pods, err := m.workloads(callee)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range pods {
			fc, err := inboundChain(m.simulate(p, sidecarType), p, want.appPort)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			h, err := httpConnectionManager(fc)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for name, id := range callers {
				ok, err := rbacAllows(h, peer{principal: id, method: "GET", path: paths[callee], port: want.appPort})
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
					continue
				}
				if wantOK := slices.Contains(allowed, name); ok != wantOK {
					errs = append(errs, fmt.Errorf("%s allows %s (%s): %v, want %v", p.name, name, id, ok, wantOK))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// hardening: requests through the gateway lose the fault header; in-mesh calls keep it.
func hardeningChecks(f matrix.Flavour) []check {
	hd := want.hardening
	return []check{
		{
			name: "gateway-strips-" + hd.header,
			run: func(m *mesh) error {
				r, err := m.gatewayRoute(paths["client"], map[string]string{hd.header: "server2=abort:503@100"})
				if err != nil {
					return err
				}
				if err := wantCluster(r, m.ingressCluster()); err != nil {
					return fmt.Errorf("gateway: %w", err)
				}
				if !removesHeader(r.route, hd.header) {
					return fmt.Errorf("gateway route %s removes %v, not %s", r, r.route.GetRequestHeadersToRemove(), hd.header)
				}
				return wantDuration("gateway route timeout", r.route.GetRoute().GetTimeout(), want.gatewayTimeout)
			},
			broken: byAPI(f, []fixture{
				{"header-removal-dropped", func(objs []object) error {
					return editRoutes(objs, "client", func(r map[string]any) bool { return deleteIn(r, "headers") })
				}},
			}, []fixture{
				{"header-modifier-dropped", func(objs []object) error {
					return editRules(objs, "HTTPRoute", "client", func(r map[string]any) bool { return deleteIn(r, "filters") })
				}},
			}),
		},
		{
			name: "in-mesh-keeps-" + hd.header,
			run: func(m *mesh) error {
				return m.eachRoute(hd.inMesh, map[string]string{hd.header: "server2=abort:503@100"}, func(r hopRoute) error {
					if err := wantCluster(r.routed, m.cluster(hd.inMesh.to, want.ingress[m.flavour].clientVersion)); err != nil {
						return err
					}
					if removesHeader(r.routed.route, hd.header) {
						return fmt.Errorf("in-mesh route removes %s", hd.header)
					}
					return nil
				})
			},
			broken: byAPI(f, []fixture{
				{"removal-for-every-caller", func(objs []object) error {
					return editRoutes(objs, "client", func(r map[string]any) bool {
						if mapAt(r, "headers") == nil {
							return false
						}
						delete(r, "match")
						return true
					})
				}},
			}, []fixture{
				{"ingress-route-also-on-the-client-service", func(objs []object) error {
					// The same HTTPRoute attached to the client Service as well: its header
					// modifier then acts on in-mesh calls too.
					rt, err := one(objs, "HTTPRoute", "client")
					if err != nil {
						return err
					}
					rt.spec()["parentRefs"] = append(listAt(rt, "spec", "parentRefs"),
						map[string]any{"group": "", "kind": "Service", "name": "client", "port": want.appPort})
					return nil
				}},
			}),
		},
	}
}

// clusterPolicy compares a cluster's circuit breakers, connect timeout and outlier detection
// with the DestinationRule's traffic policy.
func clusterPolicy(cb *cluster.CircuitBreakers, od *cluster.OutlierDetection, connect time.Duration, tp trafficPolicy) error {
	var th *cluster.CircuitBreakers_Thresholds
	for _, t := range cb.GetThresholds() {
		if t.GetPriority() == core.RoutingPriority_DEFAULT {
			th = t
		}
	}
	if th == nil {
		return errors.New("no default-priority circuit breaker thresholds")
	}
	var errs []error
	eq := func(what string, got, want uint32) {
		if got != want {
			errs = append(errs, fmt.Errorf("%s %d, want %d", what, got, want))
		}
	}
	eq("max_connections", th.GetMaxConnections().GetValue(), tp.maxConnections)
	eq("max_pending_requests", th.GetMaxPendingRequests().GetValue(), tp.http1MaxPending)
	eq("max_requests", th.GetMaxRequests().GetValue(), tp.http2MaxRequests)
	eq("max_retries", th.GetMaxRetries().GetValue(), tp.maxRetries)
	if connect != tp.connectTimeout {
		errs = append(errs, fmt.Errorf("connect_timeout %v, want %v", connect, tp.connectTimeout))
	}
	if od == nil {
		return errors.Join(append(errs, errors.New("no outlier detection"))...)
	}
	eq("consecutive_5xx", od.GetConsecutive_5Xx().GetValue(), tp.consecutive5xx)
	eq("enforcing_consecutive_5xx", od.GetEnforcingConsecutive_5Xx().GetValue(), 100)
	eq("max_ejection_percent", od.GetMaxEjectionPercent().GetValue(), tp.maxEjectionPercent)
	errs = append(errs,
		wantDuration("interval", od.GetInterval(), tp.interval),
		wantDuration("base_ejection_time", od.GetBaseEjectionTime(), tp.baseEjectionTime))
	return errors.Join(errs...)
}

// removesHeader reports whether the route removes the request header (Envoy header names are
// case-insensitive; istiod keeps an HTTPRoute's spelling, X-Meshdemo-Fault).
func removesHeader(r *route.Route, header string) bool {
	return slices.ContainsFunc(r.GetRequestHeadersToRemove(), func(h string) bool { return strings.EqualFold(h, header) })
}

// wantMirror: the route goes to cluster and mirrors to mirror, pct % of the requests.
func wantMirror(r routed, cluster, mirror string, pct float64) error {
	if err := wantCluster(r, cluster); err != nil {
		return err
	}
	mirrors := r.route.GetRoute().GetRequestMirrorPolicies()
	if len(mirrors) != 1 {
		return fmt.Errorf("%d request mirror policies, want 1", len(mirrors))
	}
	if got := mirrors[0].GetCluster(); got != mirror {
		return fmt.Errorf("mirror cluster %s, want %s", got, mirror)
	}
	got := 100.0 // Envoy mirrors every request when no fraction is set
	if f := mirrors[0].GetRuntimeFraction(); f != nil {
		got = percent(f.GetDefaultValue())
	}
	if got != pct {
		return fmt.Errorf("mirror percentage %v, want %v", got, pct)
	}
	return nil
}
