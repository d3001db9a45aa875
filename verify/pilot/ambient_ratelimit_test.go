package pilot

import (
	"errors"
	"fmt"
)

// rate-limit in ambient mode: the waypoint's filter chains for the server2 Service's ports carry
// Envoy's local rate limit with the table's bucket, just before the router; no other Service's
// chain does.
func ambientRateLimitChecks() []check {
	rl := want.rateLimit
	editFilter := func(edit func(spec map[string]any) bool) func(objs []object) error {
		return func(objs []object) error {
			changed := false
			for _, ef := range findObjects(objs, "EnvoyFilter", nil) {
				if edit(ef.spec()) {
					changed = true
				}
			}
			if !changed {
				return fmt.Errorf("%w: no EnvoyFilter had the field to break", errNoTarget)
			}
			return nil
		}
	}
	eachPatch := func(edit func(cp map[string]any)) func(objs []object) error {
		return editFilter(func(spec map[string]any) bool {
			for _, cp := range listAt(spec, "configPatches") {
				edit(cp.(map[string]any))
			}
			return len(listAt(spec, "configPatches")) > 0
		})
	}
	bucket := func(edit func(cfg map[string]any)) func(objs []object) error {
		return eachPatch(func(cp map[string]any) {
			if cfg := mapAt(cp, "patch", "value", "typed_config"); cfg != nil {
				edit(cfg)
			}
		})
	}
	chainOf := func(svc string, port int) func(objs []object) error {
		return eachPatch(func(cp map[string]any) {
			setIn(cp, waypointChain(svc, port), "match", "listener", "filterChain", "name")
		})
	}
	waypointChains := func(m *mesh, svc string, ports []int, fn func(name string, i, n int, cfgErr error, found bool) error) error {
		sim := m.waypoint()
		var errs []error
		for _, port := range ports {
			h, err := waypointHCM(sim, waypointChain(svc, port))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cfg, i, err := localRateLimit(h)
			if err == nil && cfg != nil {
				err = bucketMatches(cfg, rl)
			}
			filters := h.GetHttpFilters()
			last := len(filters) - 1
			if cfg != nil && (i != last-1 || filters[last].GetName() != routerFilter) {
				err = errors.Join(err, fmt.Errorf("%s is filter %d of %d, want it just before the router", localRateLimitFilter, i, len(filters)))
			}
			if err := fn(waypointChain(svc, port), i, len(filters), err, cfg != nil); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	wrongChain := fixture{"chains-of-server1", chainOf("server1", want.appPort)}
	return []check{
		{
			name: fmt.Sprintf("waypoint-%s-local-rate-limit", rl.service),
			run: func(m *mesh) error {
				return waypointChains(m, rl.service, rl.ports, func(name string, _, _ int, err error, found bool) error {
					if !found {
						return fmt.Errorf("waypoint chain %s: no %s", name, localRateLimitFilter)
					}
					if err != nil {
						return fmt.Errorf("waypoint chain %s: %w", name, err)
					}
					return nil
				})
			},
			broken: []fixture{
				wrongChain,
				{"chain-8080-only", chainOf(rl.service, want.appPort)},
				{"chain-50051-only", chainOf(rl.service, want.grpcPort)},
				{"context-sidecar-outbound", eachPatch(func(cp map[string]any) { setIn(cp, "SIDECAR_OUTBOUND", "match", "context") })},
				{"targets-the-ingress-gateway", editFilter(func(spec map[string]any) bool {
					if spec["targetRefs"] == nil {
						return false
					}
					spec["targetRefs"] = []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": want.gatewayName}}
					return true
				})},
				{"max-tokens-100", bucket(func(cfg map[string]any) { setIn(cfg, 100, "token_bucket", "max_tokens") })},
				{"not-enforced", bucket(func(cfg map[string]any) { delete(cfg, "filter_enforced") })},
				{"grpc-unavailable", bucket(func(cfg map[string]any) { delete(cfg, "rate_limited_as_resource_exhausted") })},
				{"inserted-first", eachPatch(func(cp map[string]any) { setIn(cp, "INSERT_FIRST", "patch", "operation") })},
			},
		},
		{
			name: fmt.Sprintf("only-%s-rate-limited-at-the-waypoint", rl.service),
			run: func(m *mesh) error {
				var errs []error
				for _, svc := range []string{"client", "server1", "user-service"} {
					ports := []int{want.appPort, want.grpcPort}
					if svc == "user-service" {
						ports = ports[:1]
					}
					errs = append(errs, waypointChains(m, svc, ports, func(name string, _, _ int, _ error, found bool) error {
						if found {
							return fmt.Errorf("waypoint chain %s carries %s", name, localRateLimitFilter)
						}
						return nil
					}))
				}
				return errors.Join(errs...)
			},
			broken: []fixture{wrongChain},
		},
	}
}
