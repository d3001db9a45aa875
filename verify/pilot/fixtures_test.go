package pilot

import (
	"fmt"
	"slices"
)

// Helpers that locate and edit rendered Istio objects for broken fixtures. They fail loudly
// when the object they look for is missing, so a fixture never degrades into a no-op.

func fqdn(svc string) string { return svc + "." + namespace + ".svc.cluster.local" }

// one returns the single object of kind named name.
func one(objs []object, kind, name string) (object, error) {
	found := findObjects(objs, kind, func(o object) bool { return o.name() == name })
	if len(found) != 1 {
		return nil, fmt.Errorf("%w: want one %s %q, found %d", errNoTarget, kind, name, len(found))
	}
	return found[0], nil
}

// virtualServiceFor returns the VirtualService that routes host (a short service name or a
// full host); exactly one must exist.
func virtualServiceFor(objs []object, host string) (object, error) {
	want := []string{host, fqdn(host)}
	found := findObjects(objs, "VirtualService", func(o object) bool {
		for _, h := range listAt(o, "spec", "hosts") {
			if s, _ := h.(string); slices.Contains(want, s) {
				return true
			}
		}
		return false
	})
	if len(found) != 1 {
		return nil, fmt.Errorf("%w: want one VirtualService for host %s, found %d", errNoTarget, host, len(found))
	}
	return found[0], nil
}

// destinationRuleFor returns the DestinationRule whose host is the service's FQDN.
func destinationRuleFor(objs []object, svc string) (object, error) {
	found := findObjects(objs, "DestinationRule", func(o object) bool {
		h := str(o, "spec", "host")
		return h == svc || h == fqdn(svc)
	})
	if len(found) != 1 {
		return nil, fmt.Errorf("%w: want one DestinationRule for %s, found %d", errNoTarget, svc, len(found))
	}
	return found[0], nil
}

// httpRoutes returns the VirtualService's http routes as editable maps.
func httpRoutes(vs object) ([]map[string]any, error) {
	var out []map[string]any
	for _, r := range listAt(vs, "spec", "http") {
		if m, ok := r.(map[string]any); ok {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: VirtualService %s has no http routes", errNoTarget, vs.name())
	}
	return out, nil
}

// editRoutes applies edit to every http route of the VirtualService for host; at least one
// edit must report a change.
func editRoutes(objs []object, host string, edit func(r map[string]any) bool) error {
	vs, err := virtualServiceFor(objs, host)
	if err != nil {
		return err
	}
	routes, err := httpRoutes(vs)
	if err != nil {
		return err
	}
	changed := false
	for _, r := range routes {
		if edit(r) {
			changed = true
		}
	}
	if !changed {
		return fmt.Errorf("%w: no http route of VirtualService %s had the field to break", errNoTarget, vs.name())
	}
	return nil
}

// retriesField breaks the sidecar flavour's retries: retries.<field> = value in every http
// route of host's VirtualService that has retries.
func retriesField(host, field string, value any) func([]object) error {
	return func(objs []object) error {
		return editRoutes(objs, host, func(r map[string]any) bool {
			if mapAt(r, "retries") == nil {
				return false
			}
			setIn(r, value, "retries", field)
			return true
		})
	}
}

// retryField breaks the Gateway API flavours' retries: retry.<field> = value in every rule
// of the HTTPRoute name that has a retry.
func retryField(name, field string, value any) func([]object) error {
	return func(objs []object) error {
		return editRules(objs, "HTTPRoute", name, func(r map[string]any) bool {
			if mapAt(r, "retry") == nil {
				return false
			}
			setIn(r, value, "retry", field)
			return true
		})
	}
}

// setIn sets a nested field, creating maps on the way.
func setIn(m map[string]any, value any, keys ...string) {
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = value
}

// deleteIn removes a nested field and reports whether it existed.
func deleteIn(m map[string]any, keys ...string) bool {
	parent := mapAt(m, keys[:len(keys)-1]...)
	if len(keys) == 1 {
		parent = m
	}
	if parent == nil {
		return false
	}
	if _, ok := parent[keys[len(keys)-1]]; !ok {
		return false
	}
	delete(parent, keys[len(keys)-1])
	return true
}

// removeObjects drops every object of kind matching keep from objs in place (the slice keeps its
// length; removed entries become empty objects, which buildWorld ignores).
func removeObjects(objs []object, kind string, keep func(o object) bool) error {
	n := 0
	for i, o := range objs {
		if o.kind() == kind && (keep == nil || keep(o)) {
			objs[i] = object{"kind": "Removed"}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: no %s to remove", errNoTarget, kind)
	}
	return nil
}

// editRules applies edit to every rule of the Gateway API route (HTTPRoute, GRPCRoute) of kind
// named name; at least one edit must report a change.
func editRules(objs []object, kind, name string, edit func(r map[string]any) bool) error {
	rt, err := one(objs, kind, name)
	if err != nil {
		return err
	}
	changed := false
	for _, r := range listAt(rt, "spec", "rules") {
		if m, ok := r.(map[string]any); ok && edit(m) {
			changed = true
		}
	}
	if !changed {
		return fmt.Errorf("%w: no rule of %s %s had the field to break", errNoTarget, kind, name)
	}
	return nil
}

// setBackends points every backendRef of a rule at service:port; false if the rule has none.
func setBackends(r map[string]any, service string, port int) bool {
	refs := listAt(r, "backendRefs")
	for _, b := range refs {
		bm := b.(map[string]any)
		bm["name"], bm["port"] = service, port
	}
	return len(refs) > 0
}

// turnInto replaces the object of kind named name with replacement: a fixture cannot add an
// object, so one it does not need becomes the one it adds.
func turnInto(objs []object, kind, name string, replacement object) error {
	for i, o := range objs {
		if o.kind() == kind && o.name() == name {
			objs[i] = replacement
			return nil
		}
	}
	return fmt.Errorf("%w: no %s %s to turn into a %s", errNoTarget, kind, name, replacement.kind())
}

// headerValueChanged breaks a Gateway API rule's header match: the named header's value
// becomes "someone-else" in every match (HTTPRoute and GRPCRoute rules alike).
func headerValueChanged(header string) func(r map[string]any) bool {
	return func(r map[string]any) bool {
		changed := false
		for _, mt := range listAt(r, "matches") {
			for _, h := range listAt(mt.(map[string]any), "headers") {
				if hm := h.(map[string]any); hm["name"] == header {
					hm["value"] = "someone-else"
					changed = true
				}
			}
		}
		return changed
	}
}
