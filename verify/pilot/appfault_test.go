package pilot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Gateway API has no fault filter, so the Gateway API flavours make the target fail by itself:
// meshdemo's app-level faults, FAULT_* environment variables on the Deployment the route reaches
// (services/internal/faults). The checks follow the route istiod generated to its cluster, from
// the cluster's host to the Service and from the Service's selector to the Deployments behind it,
// and read their environment; and they require that no Envoy fault is configured on the route.

// clusterHost is the host of an Envoy cluster name (outbound|port|subset|host, inbound-vip|port|proto|host).
func clusterHost(cluster string) string {
	parts := strings.Split(cluster, "|")
	return parts[len(parts)-1]
}

// deploymentsBehind returns the Deployments whose pods the Service of a cluster's host selects.
func (m *mesh) deploymentsBehind(cluster string) ([]object, error) {
	host := clusterHost(cluster)
	svcName, ok := strings.CutSuffix(host, "."+namespace+".svc.cluster.local")
	if !ok {
		return nil, fmt.Errorf("cluster %s: host %s is not a Service of %s", cluster, host, namespace)
	}
	svc, err := one(m.objs, "Service", svcName)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	selector := stringMap(svc, "spec", "selector")
	out := findObjects(m.objs, "Deployment", func(d object) bool {
		return len(selector) > 0 && labelsMatch(selector, stringMap(d, "spec", "template", "metadata", "labels"))
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster %s: Service %s selects no Deployment", cluster, svcName)
	}
	return out, nil
}

// appEnv is the environment of a Deployment's first container (the workload's), by name.
func appEnv(d object) map[string]string {
	out := map[string]string{}
	containers := listAt(d, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		return out
	}
	for _, e := range listAt(containers[0].(map[string]any), "env") {
		em := e.(map[string]any)
		if v, ok := em["value"].(string); ok {
			out[str(em, "name")] = v
		}
	}
	return out
}

// appFaults returns, for the single cluster a hop's route reaches, the FAULT_* environment of
// every Deployment behind it, and fails if the route itself carries an Envoy fault.
func (m *mesh) appFaults(r routed) (map[string]map[string]string, error) {
	if fc, err := faultOf(r.route); err != nil || fc != nil {
		return nil, fmt.Errorf("route carries an Envoy fault (%v, %v): the Gateway API flavours have none", fc, err)
	}
	c, err := r.cluster()
	if err != nil {
		return nil, err
	}
	ds, err := m.deploymentsBehind(c)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, d := range ds {
		env := map[string]string{}
		for k, v := range appEnv(d) {
			if strings.HasPrefix(k, "FAULT_") {
				env[k] = v
			}
		}
		out[d.name()] = env
	}
	return out, nil
}

// appDelay: every route of the hop reaches Deployments that delay every call by f.delay
// (FAULT_DELAY; an app-level delay applies to every request, so the table's percentage must be 100).
func appDelay(m *mesh, f delayFault, r routed) error {
	if f.pct != 100 {
		return fmt.Errorf("an app-level delay applies to every request; the table wants %v %%", f.pct)
	}
	faults, err := m.appFaults(r)
	if err != nil {
		return err
	}
	var errs []error
	for d, env := range faults {
		got, err := time.ParseDuration(env["FAULT_DELAY"])
		switch {
		case env["FAULT_DELAY"] == "":
			errs = append(errs, fmt.Errorf("Deployment %s (behind the route) has no FAULT_DELAY", d))
		case err != nil:
			errs = append(errs, fmt.Errorf("Deployment %s: FAULT_DELAY %q: %w", d, env["FAULT_DELAY"], err))
		case got != f.delay:
			errs = append(errs, fmt.Errorf("Deployment %s: FAULT_DELAY %v, want %v", d, got, f.delay))
		}
		if env["FAULT_ERROR_RATE"] != "" {
			errs = append(errs, fmt.Errorf("Deployment %s: unexpected FAULT_ERROR_RATE %s", d, env["FAULT_ERROR_RATE"]))
		}
	}
	return errors.Join(errs...)
}

// appAbort: every route of the hop reaches Deployments that fail pct % of the calls with status.
func appAbort(m *mesh, f abortFault, r routed) error {
	faults, err := m.appFaults(r)
	if err != nil {
		return err
	}
	var errs []error
	for d, env := range faults {
		rate, err := strconv.ParseFloat(env["FAULT_ERROR_RATE"], 64)
		if err != nil || rate != f.pct {
			errs = append(errs, fmt.Errorf("Deployment %s: FAULT_ERROR_RATE %q, want %v (percent)", d, env["FAULT_ERROR_RATE"], f.pct))
		}
		code, err := strconv.Atoi(env["FAULT_ERROR_CODE"])
		if err != nil || uint32(code) != f.status {
			errs = append(errs, fmt.Errorf("Deployment %s: FAULT_ERROR_CODE %q, want %d", d, env["FAULT_ERROR_CODE"], f.status))
		}
		if env["FAULT_DELAY"] != "" {
			errs = append(errs, fmt.Errorf("Deployment %s: unexpected FAULT_DELAY %s", d, env["FAULT_DELAY"]))
		}
	}
	return errors.Join(errs...)
}

// setEnv sets (value != "") or removes (value == "") an environment variable of a Deployment's
// first container; it fails when a removal finds nothing.
func setEnv(objs []object, deployment, name, value string) error {
	d, err := one(objs, "Deployment", deployment)
	if err != nil {
		return err
	}
	c := listAt(d, "spec", "template", "spec", "containers")[0].(map[string]any)
	env := listAt(c, "env")
	for i, e := range env {
		if str(e.(map[string]any), "name") == name {
			if value == "" {
				c["env"] = append(env[:i:i], env[i+1:]...)
			} else {
				e.(map[string]any)["value"] = value
			}
			return nil
		}
	}
	if value == "" {
		return fmt.Errorf("%w: Deployment %s has no %s", errNoTarget, deployment, name)
	}
	c["env"] = append(env, map[string]any{"name": name, "value": value})
	return nil
}
