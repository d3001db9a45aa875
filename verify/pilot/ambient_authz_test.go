package pilot

import (
	"errors"
	"fmt"
	"slices"
)

// authz in ambient mode: two layers, both checked. ztunnel (L4) lets each pod be reached only by
// its direct peer (ztunnelAllowed); the waypoint (L7, policies with targetRefs) allows the call
// graph by the original caller's identity, and the database's TCP port to its callers.
func ambientAuthzChecks() []check {
	editPolicy := func(name string, edit func(spec map[string]any) bool) func(objs []object) error {
		return func(objs []object) error {
			ap, err := one(objs, "AuthorizationPolicy", name)
			if err != nil {
				return err
			}
			if !edit(ap.spec()) {
				return fmt.Errorf("%w: AuthorizationPolicy %s has nothing to break", errNoTarget, name)
			}
			return nil
		}
	}
	principals := func(ids ...any) func(spec map[string]any) bool {
		return func(spec map[string]any) bool {
			n := 0
			for _, rule := range listAt(spec, "rules") {
				for _, from := range listAt(rule.(map[string]any), "from") {
					setIn(from.(map[string]any), ids, "source", "principals")
					n++
				}
			}
			return n > 0
		}
	}
	byTarget := func(kind string) func(o object) bool {
		return func(o object) bool {
			for _, t := range listAt(o, "spec", "targetRefs") {
				if str(t.(map[string]any), "kind") == kind {
					return true
				}
			}
			return false
		}
	}
	return []check{
		{
			name: "ztunnel-allows-exactly-the-direct-peers",
			run:  ztunnelPeers,
			broken: []fixture{
				{"server1-from-client-not-waypoint", editPolicy("server1", principals("cluster.local/ns/meshdemo/sa/client"))},
				{"client-from-any-namespace", editPolicy("client", principals("*/sa/meshdemo-gateway-istio"))},
				{"selector-policies-removed", func(objs []object) error {
					return removeObjects(objs, "AuthorizationPolicy", func(o object) bool { return mapAt(o, "spec", "selector") != nil })
				}},
				{"allow-nothing-removed-and-postgres-any", func(objs []object) error {
					if err := removeObjects(objs, "AuthorizationPolicy", func(o object) bool { return o.name() == "allow-nothing" }); err != nil {
						return err
					}
					return editPolicy("postgres", func(spec map[string]any) bool { spec["rules"] = []any{map[string]any{}}; return true })(objs)
				}},
			},
		},
		{
			name: "waypoint-rbac-allows-exactly-the-call-graph",
			run:  waypointCallGraph,
			broken: []fixture{
				{"server1-l7-allows-server2", editPolicy("server1-l7", principals("cluster.local/ns/meshdemo/sa/server2"))},
				{"service-policies-removed", func(objs []object) error {
					return removeObjects(objs, "AuthorizationPolicy", byTarget("Service"))
				}},
				{"waypoint-allow-nothing-removed", func(objs []object) error {
					return removeObjects(objs, "AuthorizationPolicy", func(o object) bool { return o.name() == "waypoint-allow-nothing" })
				}},
				{"server2-l7-targets-the-waypoint", editPolicy("server2-l7", func(spec map[string]any) bool {
					// A policy on the waypoint itself applies to every Service behind it.
					spec["targetRefs"] = []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}}
					return true
				})},
			},
		},
		{
			name: fmt.Sprintf("waypoint-rbac-%s-tcp-%d", want.database.name, want.database.port),
			run:  waypointDatabase,
			broken: []fixture{
				{"principal-client", editPolicy("postgres-l7", principals("cluster.local/ns/meshdemo/sa/client"))},
				{"other-port", editPolicy("postgres-l7", func(spec map[string]any) bool {
					n := 0
					for _, rule := range listAt(spec, "rules") {
						for _, to := range listAt(rule.(map[string]any), "to") {
							setIn(to.(map[string]any), []any{"5433"}, "operation", "ports")
							n++
						}
					}
					return n > 0
				})},
				{"rule-with-http-method", editPolicy("postgres-l7", func(spec map[string]any) bool {
					n := 0
					for _, rule := range listAt(spec, "rules") {
						for _, to := range listAt(rule.(map[string]any), "to") {
							setIn(to.(map[string]any), []any{"GET"}, "operation", "methods")
							n++
						}
					}
					return n > 0
				})},
			},
		},
	}
}

// ambientIdentities are the callers tried: every identity of the mesh, the waypoint's, and one
// that only looks like the gateway.
func (m *mesh) ambientIdentities() map[string]string {
	ids := m.identities()
	ids[waypointCaller] = m.wp.identity()
	return ids
}

// ztunnelPeers: on every pod of every workload in the table, ztunnel admits exactly the listed
// direct peers, on the workload's port.
func ztunnelPeers(m *mesh) error {
	v, err := m.ztunnel()
	if err != nil {
		return err
	}
	var errs []error
	for callee, allowed := range want.ztunnelAllowed {
		port := want.appPort
		if callee == want.database.name {
			port = want.database.port
		}
		for _, p := range m.pods {
			if p.labels["app"] != callee {
				continue
			}
			for name, id := range m.ambientIdentities() {
				ok, err := v.allows(p, id, port)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if wantOK := slices.Contains(allowed, name); ok != wantOK {
					errs = append(errs, fmt.Errorf("ztunnel: %s:%d allows %s (%s): %v, want %v", p.name, port, name, id, ok, wantOK))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// waypointCallGraph: the waypoint's chain for each Service's HTTP port allows exactly the
// callers of the call graph, by the original caller's identity. The ingress gateway sends to the
// client pod directly, so no identity at all may call the client Service through the waypoint.
func waypointCallGraph(m *mesh) error {
	sim := m.waypoint()
	var errs []error
	for callee, allowed := range want.authzAllowed {
		h, err := waypointHCM(sim, waypointChain(callee, want.appPort))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for name, id := range m.ambientIdentities() {
			ok, err := rbacAllows(h, peer{principal: id, method: "GET", path: paths[callee], port: want.appPort})
			if err != nil {
				errs = append(errs, fmt.Errorf("waypoint chain %s: %w", waypointChain(callee, want.appPort), err))
				continue
			}
			if wantOK := name != ingressCaller && slices.Contains(allowed, name); ok != wantOK {
				errs = append(errs, fmt.Errorf("waypoint: %s allows %s (%s): %v, want %v", callee, name, id, ok, wantOK))
			}
		}
	}
	return errors.Join(errs...)
}

// waypointDatabase: the waypoint's TCP chain for the database's port lets only its callers through.
func waypointDatabase(m *mesh) error {
	db := want.database
	name := fmt.Sprintf("inbound-vip|%d|tcp|%s", db.port, fqdn(db.name))
	fc, err := waypointChainFor(m.waypoint(), name)
	if err != nil {
		return err
	}
	var errs []error
	for caller, id := range m.ambientIdentities() {
		ok, n, err := networkRBACAllows(fc, peer{principal: id, port: db.port})
		if err != nil {
			return fmt.Errorf("waypoint chain %s: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("waypoint chain %s has no network RBAC filter", name)
		}
		if wantOK := slices.Contains(db.callers, caller); ok != wantOK {
			errs = append(errs, fmt.Errorf("waypoint: %s:%d allows %s (%s): %v, want %v", db.name, db.port, caller, id, ok, wantOK))
		}
	}
	return errors.Join(errs...)
}
