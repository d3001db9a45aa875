package pilot

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"istio.io/istio/pilot/pkg/simulation"
)

// scenarioChecks holds every scenario's expectations, keyed by the scenario's name in the
// declaration (deploy/matrix). checks builds a scenario's checks for a flavour from the one table
// of expected values (expected_test.go), where a value that differs by flavour has the flavour as
// a column; where a flavour proves a scenario with other checks altogether (ambient: ztunnel and
// the waypoint instead of sidecars), byFlavour is that flavour's column.
var scenarioChecks = map[string]scenarioSpec{
	"header-routing":    {checks: headerRoutingChecks},
	"weighted-split":    {checks: weightedSplitChecks},
	"route-timeout":     {checks: routeTimeoutChecks},
	"fault-abort":       {checks: faultAbortChecks},
	"fault-delay":       {checks: faultDelayChecks},
	"retries":           {checks: retriesChecks},
	"outlier-detection": {checks: outlierChecks},
	"mirroring":         {checks: mirroringChecks},
	"authz":             {checks: authzChecks, byFlavour: map[matrix.Flavour]func() []check{matrix.Ambient: ambientAuthzChecks}},
	"hardening":         {checks: hardeningChecks},
	"grpc-balancing":    {checks: grpcBalancingChecks},
	"rate-limit":        {checks: rateLimitChecks, byFlavour: map[matrix.Flavour]func() []check{matrix.Ambient: ambientRateLimitChecks}},
}

type scenarioSpec struct {
	checks    func(f matrix.Flavour) []check
	byFlavour map[matrix.Flavour]func() []check
}

func (s scenarioSpec) checksFor(f matrix.Flavour) []check {
	if c, ok := s.byFlavour[f]; ok {
		return c()
	}
	return s.checks(f)
}

// TestScenarios runs every scenario of the declaration in every flavour of this process
// (processFlavours): TestScenarios/<flavour>/<scenario>. A declared scenario without
// expectations fails, and so does an expectation for a scenario the declaration does not have.
func TestScenarios(t *testing.T) {
	for name := range scenarioChecks {
		if !matrix.IsScenario(name) {
			t.Errorf("scenarioChecks has %s, which deploy/matrix does not declare", name)
		}
	}
	for _, f := range processFlavours() {
		t.Run(f.String(), func(t *testing.T) {
			for _, name := range matrix.ScenarioNames() {
				t.Run(name, func(t *testing.T) {
					s, ok := scenarioChecks[name]
					if !ok {
						t.Fatalf("scenario %s is declared in deploy/matrix but has no expectations in scenarioChecks", name)
					}
					runScenario(t, f, name, s.checksFor(f))
				})
			}
		})
	}
}

// header-routing: header=value reaches v2, no header or another value stays on v1.
func headerRoutingChecks(f matrix.Flavour) []check {
	var checks []check
	for _, hr := range want.headerRouting {
		checks = append(checks, check{
			name: fmt.Sprintf("%s-to-%s-%s", hr.hop.from, hr.hop.to, hr.header),
			run: func(m *mesh) error {
				var errs []error
				for _, c := range hr.cases() {
					errs = append(errs, m.eachRoute(hr.hop, c.headers, func(r hopRoute) error {
						if err := wantCluster(r.routed, m.cluster(hr.hop.to, c.version)); err != nil {
							return fmt.Errorf("headers %v: %w", c.headers, err)
						}
						return nil
					}))
				}
				return errors.Join(errs...)
			},
			broken: byAPI(f, []fixture{
				{"header-value-changed", func(objs []object) error {
					return editRoutes(objs, hr.hop.to, func(r map[string]any) bool {
						changed := false
						for _, mt := range listAt(r, "match") {
							if h := mapAt(mt.(map[string]any), "headers", hr.header); h != nil {
								h["exact"] = "someone-else"
								changed = true
							}
						}
						return changed
					})
				}},
				{"header-route-to-v1", func(objs []object) error {
					return editRoutes(objs, hr.hop.to, func(r map[string]any) bool {
						if listAt(r, "match") == nil {
							return false
						}
						for _, d := range listAt(r, "route") {
							setIn(d.(map[string]any), "v1", "destination", "subset")
						}
						return true
					})
				}},
			}, []fixture{
				{"header-value-changed", func(objs []object) error {
					return editRules(objs, "HTTPRoute", hr.hop.to, headerValueChanged(hr.header))
				}},
				{"header-route-to-v1", func(objs []object) error {
					return editRules(objs, "HTTPRoute", hr.hop.to, func(r map[string]any) bool {
						if !ruleMatchesHeader(r) {
							return false
						}
						return setBackends(r, hr.hop.to+"-v1", want.appPort)
					})
				}},
			}),
		})
		if strings.Contains(hr.header, "_") {
			checks = append(checks, underscoreHeaderCheck(f, hr.header))
		}
	}
	for _, hr := range want.grpcRoutes.headerRouting {
		checks = append(checks, grpcHeaderRoutingCheck(f, hr))
	}
	return checks
}

// underscoreHeaderCheck: Envoy rejects or drops headers with underscores when its connection
// manager says so (Istio's EDGE connection profile does, for gateways). A routing header like
// canary_id must pass every connection manager on the way: the gateway's, and each sidecar's
// inbound and outbound ones.
func underscoreHeaderCheck(f matrix.Flavour, header string) check {
	if !f.Sidecars() {
		// No sidecar: the header meets the gateway's and the waypoint's connection managers.
		return ambientUnderscoreHeaderCheck(header)
	}
	return check{
		name: "underscore-header-" + header + "-allowed-everywhere",
		run: func(m *mesh) error {
			hcms := map[string]simulationCall{
				"ingress gateway": {m.ingress(), simulation.Call{
					Port: m.gatewayListenerPort(), HostHeader: want.gatewayHost, Protocol: simulation.HTTP,
					CallMode: simulation.CallModeGateway,
				}},
			}
			for _, p := range m.pods {
				if !m.servesHTTP(p) {
					continue // the database: a TCP port, no connection manager to configure
				}
				sim := m.simulate(p, sidecarType)
				hcms[p.name+" inbound"] = simulationCall{sim, simulation.Call{
					Address: p.ip, Port: want.appPort, Protocol: simulation.HTTP, TLS: simulation.MTLS,
					HostHeader: p.labels["app"], CallMode: simulation.CallModeInbound,
				}}
				hcms[p.name+" outbound"] = simulationCall{sim, simulation.Call{
					Address: m.services["server2"], Port: want.appPort, Protocol: simulation.HTTP,
					HostHeader: "server2", CallMode: simulation.CallModeOutbound,
				}}
			}
			var errs []error
			for name, sc := range hcms {
				h, err := connectionManagerFor(sc.sim, sc.call)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					continue
				}
				if a := h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a != core.HttpProtocolOptions_ALLOW {
					errs = append(errs, fmt.Errorf("%s: headers_with_underscores_action %v: %s would not arrive", name, a, header))
				}
			}
			return errors.Join(errs...)
		},
		broken: []fixture{
			{"server1-drops-underscore-headers", func(objs []object) error {
				d, err := one(objs, "Deployment", "server1-v1")
				if err != nil {
					return err
				}
				setIn(d, `{"holdApplicationUntilProxyStarts": true, "connectionSettings": {"httpHeadersWithUnderscoresAction": "HEADERS_WITH_UNDERSCORES_DROP_HEADER"}}`,
					"spec", "template", "metadata", "annotations", proxyConfigAnnotation)
				return nil
			}},
		},
	}
}

type simulationCall struct {
	sim  *simulation.Simulation
	call simulation.Call
}

// weighted-split: the route's weighted clusters are exactly the configured subsets and weights.
func weightedSplitChecks(f matrix.Flavour) []check {
	s := want.weightedSplit
	return []check{{
		name: fmt.Sprintf("%s-to-%s-weights", s.hop.from, s.hop.to),
		run: func(m *mesh) error {
			wantW := map[string]uint32{}
			for subset, w := range s.weights {
				wantW[m.cluster(s.hop.to, subset)] = w
			}
			return m.eachRoute(s.hop, nil, func(r hopRoute) error {
				a := r.routed.route.GetRoute()
				got := weights(a)
				if len(got) == 0 {
					return fmt.Errorf("route has no weighted clusters (single cluster %q)", a.GetCluster())
				}
				if !maps.Equal(got, wantW) {
					return fmt.Errorf("weighted clusters %v, want %v", got, wantW)
				}
				return nil
			})
		},
		broken: byAPI(f, []fixture{
			{"weights-50-50", func(objs []object) error {
				return editRoutes(objs, s.hop.to, func(r map[string]any) bool {
					dests := listAt(r, "route")
					for _, d := range dests {
						d.(map[string]any)["weight"] = 50
					}
					return len(dests) == 2
				})
			}},
			{"v2-destination-dropped", func(objs []object) error {
				return editRoutes(objs, s.hop.to, func(r map[string]any) bool {
					dests := listAt(r, "route")
					if len(dests) < 2 {
						return false
					}
					d := dests[0].(map[string]any)
					delete(d, "weight")
					r["route"] = []any{d}
					return true
				})
			}},
		}, []fixture{
			{"weights-50-50", func(objs []object) error {
				return editRules(objs, "HTTPRoute", s.hop.to, func(r map[string]any) bool {
					refs := listAt(r, "backendRefs")
					for _, b := range refs {
						b.(map[string]any)["weight"] = 50
					}
					return len(refs) == 2
				})
			}},
			{"v2-backend-dropped", func(objs []object) error {
				return editRules(objs, "HTTPRoute", s.hop.to, func(r map[string]any) bool {
					refs := listAt(r, "backendRefs")
					if len(refs) < 2 {
						return false
					}
					b := refs[0].(map[string]any)
					delete(b, "weight")
					r["backendRefs"] = []any{b}
					return true
				})
			}},
		}),
	}, grpcSplitCheck(f, want.grpcRoutes.weightedSplit)}
}

// route-timeout: the caller's route times out before the delayed hop below answers.
func routeTimeoutChecks(f matrix.Flavour) []check {
	rt := want.routeTimeout
	timeoutFixture := fixture{"timeout-3s", func(objs []object) error {
		if f.GatewayAPIRoutes() {
			return editRules(objs, "HTTPRoute", rt.timeoutHop.to, func(r map[string]any) bool {
				had := str(r, "timeouts", "request") != ""
				setIn(r, "3s", "timeouts", "request")
				return had
			})
		}
		return editRoutes(objs, rt.timeoutHop.to, func(r map[string]any) bool {
			_, had := r["timeout"]
			r["timeout"] = "3s"
			return had
		})
	}}
	return []check{
		{
			name: fmt.Sprintf("%s-to-%s-timeout", rt.timeoutHop.from, rt.timeoutHop.to),
			run: func(m *mesh) error {
				return m.eachRoute(rt.timeoutHop, nil, func(r hopRoute) error {
					return wantDuration("route timeout", r.routed.route.GetRoute().GetTimeout(), rt.timeout)
				})
			},
			broken: []fixture{timeoutFixture},
		},
		delayCheck(f, rt.delay),
		{
			name: "delay-exceeds-caller-timeout",
			run: func(m *mesh) error {
				d, err := m.faultDelay(rt.delay.hop)
				if err != nil {
					return err
				}
				return m.eachRoute(rt.timeoutHop, nil, func(r hopRoute) error {
					if to := routeTimeout(r.routed.route); to == 0 || to >= d {
						return fmt.Errorf("route timeout %v does not cut the %v delay below it", to, d)
					}
					return nil
				})
			},
			broken: []fixture{timeoutFixture},
		},
	}
}

// delayCheck: the delayed hop's route carries the fault filter's fixed delay and percentage
// (sidecar flavour), or reaches Deployments that delay every call themselves (FAULT_DELAY, the
// Gateway API flavours) with no Envoy fault on the route.
func delayCheck(fl matrix.Flavour, f delayFault) check {
	if fl.GatewayAPIRoutes() {
		return check{
			name: fmt.Sprintf("%s-to-%s-app-delay", f.hop.from, f.hop.to),
			run: func(m *mesh) error {
				return m.eachRoute(f.hop, nil, func(r hopRoute) error { return appDelay(m, f, r.routed) })
			},
			broken: []fixture{
				{"fault-env-removed", func(objs []object) error { return setEnv(objs, f.hop.to+"-v1", "FAULT_DELAY", "") }},
				{"delay-halved", func(objs []object) error {
					return setEnv(objs, f.hop.to+"-v1", "FAULT_DELAY", (f.delay / 2).String())
				}},
				{"route-to-v2", func(objs []object) error {
					return editRules(objs, "HTTPRoute", f.hop.to, func(r map[string]any) bool {
						return setBackends(r, f.hop.to+"-v2", want.appPort)
					})
				}},
			},
		}
	}
	return check{
		name: fmt.Sprintf("%s-to-%s-delay", f.hop.from, f.hop.to),
		run: func(m *mesh) error {
			return m.eachRoute(f.hop, nil, func(r hopRoute) error {
				fc, err := faultOf(r.routed.route)
				if err != nil {
					return err
				}
				if fc.GetDelay() == nil {
					return errors.New("no fault delay on the route")
				}
				if err := wantDuration("fault delay", fc.GetDelay().GetFixedDelay(), f.delay); err != nil {
					return err
				}
				if got := percent(fc.GetDelay().GetPercentage()); got != f.pct {
					return fmt.Errorf("fault delay percentage %v, want %v", got, f.pct)
				}
				if fc.GetAbort() != nil {
					return fmt.Errorf("unexpected fault abort %v", fc.GetAbort())
				}
				return nil
			})
		},
		broken: []fixture{
			{"fault-removed", func(objs []object) error {
				// The whole fault: istiod rejects a fault with neither delay nor abort.
				return editRoutes(objs, f.hop.to, func(r map[string]any) bool {
					return mapAt(r, "fault", "delay") != nil && deleteIn(r, "fault")
				})
			}},
			{"delay-halved-percentage", func(objs []object) error {
				return editRoutes(objs, f.hop.to, func(r map[string]any) bool {
					if mapAt(r, "fault", "delay") == nil {
						return false
					}
					setIn(r, map[string]any{"value": f.pct / 2}, "fault", "delay", "percentage")
					return true
				})
			}},
		},
	}
}

// faultDelay reads the fixed delay on h's route (the same for every caller version), or the
// FAULT_DELAY of the Deployment the route reaches (Gateway API flavours).
func (m *mesh) faultDelay(h hop) (time.Duration, error) {
	routes, err := m.routeHop(h, nil)
	if err != nil {
		return 0, err
	}
	if m.flavour.GatewayAPIRoutes() {
		faults, err := m.appFaults(routes[0].routed)
		if err != nil {
			return 0, err
		}
		var longest time.Duration
		for d, env := range faults {
			v, err := time.ParseDuration(env["FAULT_DELAY"])
			if err != nil {
				return 0, fmt.Errorf("%s -> %s: Deployment %s: FAULT_DELAY %q: %w", h.from, h.to, d, env["FAULT_DELAY"], err)
			}
			longest = max(longest, v)
		}
		return longest, nil
	}
	fc, err := faultOf(routes[0].routed.route)
	if err != nil || fc.GetDelay() == nil {
		return 0, fmt.Errorf("%s -> %s: no fault delay (%v)", h.from, h.to, err)
	}
	return fc.GetDelay().GetFixedDelay().AsDuration(), nil
}

// fault-abort: the fault filter's abort status and percentage per hop.
func faultAbortChecks(fl matrix.Flavour) []check {
	var checks []check
	for _, f := range want.faultAbort {
		if fl.GatewayAPIRoutes() {
			checks = append(checks, check{
				name: fmt.Sprintf("%s-to-%s-app-abort", f.hop.from, f.hop.to),
				run: func(m *mesh) error {
					return m.eachRoute(f.hop, nil, func(r hopRoute) error { return appAbort(m, f, r.routed) })
				},
				broken: []fixture{
					{"abort-status-changed", func(objs []object) error { return setEnv(objs, f.hop.to+"-v1", "FAULT_ERROR_CODE", "418") }},
					{"abort-rate-changed", func(objs []object) error {
						return setEnv(objs, f.hop.to+"-v1", "FAULT_ERROR_RATE", strconv.FormatFloat(f.pct/5, 'f', -1, 64))
					}},
					{"route-to-v2", func(objs []object) error {
						return editRules(objs, "HTTPRoute", f.hop.to, func(r map[string]any) bool {
							return setBackends(r, f.hop.to+"-v2", want.appPort)
						})
					}},
				},
			})
			if len(f.above) > 0 {
				checks = append(checks, abortNotRetriedCheck(fl, f))
			}
			continue
		}
		checks = append(checks, check{
			name: fmt.Sprintf("%s-to-%s-abort", f.hop.from, f.hop.to),
			run: func(m *mesh) error {
				return m.eachRoute(f.hop, nil, func(r hopRoute) error {
					fc, err := faultOf(r.routed.route)
					if err != nil {
						return err
					}
					a := fc.GetAbort()
					if a == nil {
						return errors.New("no fault abort on the route")
					}
					if a.GetHttpStatus() != f.status {
						return fmt.Errorf("abort status %d, want %d", a.GetHttpStatus(), f.status)
					}
					if got := percent(a.GetPercentage()); got != f.pct {
						return fmt.Errorf("abort percentage %v, want %v", got, f.pct)
					}
					if fc.GetDelay() != nil {
						return fmt.Errorf("unexpected fault delay %v", fc.GetDelay())
					}
					return nil
				})
			},
			broken: []fixture{
				{"abort-status-changed", func(objs []object) error {
					return editRoutes(objs, f.hop.to, func(r map[string]any) bool {
						if mapAt(r, "fault", "abort") == nil {
							return false
						}
						setIn(r, 418, "fault", "abort", "httpStatus")
						return true
					})
				}},
				{"abort-percentage-changed", func(objs []object) error {
					return editRoutes(objs, f.hop.to, func(r map[string]any) bool {
						if mapAt(r, "fault", "abort") == nil {
							return false
						}
						setIn(r, map[string]any{"value": f.pct / 5}, "fault", "abort", "percentage")
						return true
					})
				}},
			},
		})
		if len(f.above) > 0 {
			checks = append(checks, abortNotRetriedCheck(fl, f))
		}
	}
	return checks
}

// abortNotRetriedCheck: the aborted status travels back through the hops above; if any of their
// routes retried it, the observed abort rate would be far below the configured one.
func abortNotRetriedCheck(fl matrix.Flavour, f abortFault) check {
	return check{
		name: fmt.Sprintf("%d-not-retried-above-%s", f.status, f.hop.from),
		run: func(m *mesh) error {
			var errs []error
			for _, h := range f.above {
				if h.from == ingressCaller {
					r, err := m.gatewayRoute(paths[h.to], nil)
					if err != nil {
						errs = append(errs, err)
						continue
					}
					if retriesStatus(r.route.GetRoute().GetRetryPolicy(), f.status) {
						errs = append(errs, fmt.Errorf("gateway -> %s (%s) retries %d", h.to, r, f.status))
					}
					continue
				}
				errs = append(errs, m.eachRoute(h, nil, func(r hopRoute) error {
					if retriesStatus(r.routed.route.GetRoute().GetRetryPolicy(), f.status) {
						return fmt.Errorf("retries %d (policy %v)", f.status, r.routed.route.GetRoute().GetRetryPolicy())
					}
					return nil
				}))
			}
			return errors.Join(errs...)
		},
		broken: byAPI(fl, []fixture{
			{"server1-retries-4xx", func(objs []object) error {
				return editRoutes(objs, "server1", func(r map[string]any) bool {
					r["retries"] = map[string]any{"attempts": 2, "retryOn": fmt.Sprintf("connect-failure,%d", f.status)}
					return true
				})
			}},
		}, []fixture{
			{"server1-retries-4xx", func(objs []object) error {
				return editRules(objs, "HTTPRoute", "server1", func(r map[string]any) bool {
					r["retry"] = map[string]any{"attempts": 2, "codes": []any{int(f.status)}}
					return true
				})
			}},
		}),
	}
}

// fault-delay: the delay is applied and stays under every timeout on the way, so the call succeeds.
func faultDelayChecks(fl matrix.Flavour) []check {
	f := want.faultDelay
	return []check{
		delayCheck(fl, f),
		{
			name: "delay-below-every-timeout",
			run: func(m *mesh) error {
				d, err := m.faultDelay(f.hop)
				if err != nil {
					return err
				}
				gw, err := m.gatewayRoute(paths["client"], nil)
				if err != nil {
					return err
				}
				var errs []error
				if to := routeTimeout(gw.route); to != 0 && to <= d {
					errs = append(errs, fmt.Errorf("gateway route timeout %v <= delay %v", to, d))
				}
				for _, h := range []hop{{"client", "server1"}, f.hop} {
					errs = append(errs, m.eachRoute(h, nil, func(r hopRoute) error {
						if to := routeTimeout(r.routed.route); to != 0 && to <= d {
							return fmt.Errorf("route timeout %v <= delay %v", to, d)
						}
						return nil
					}))
				}
				return errors.Join(errs...)
			},
			broken: byAPI(fl, []fixture{
				{"server1-timeout-2s", func(objs []object) error {
					return editRoutes(objs, "server1", func(r map[string]any) bool {
						r["timeout"] = "2s"
						return true
					})
				}},
			}, []fixture{
				{"server1-timeout-2s", func(objs []object) error {
					return editRules(objs, "HTTPRoute", "server1", func(r map[string]any) bool {
						setIn(r, "2s", "timeouts", "request")
						return true
					})
				}},
			}),
		},
	}
}

// retries: attempts, per-try timeout and retry-on as configured on every retried hop, what
// Envoy does with them in the flavour (a timed-out try retried or not, which statuses), and
// each hop's whole budget fits in the gateway's route timeout.
func retriesChecks(f matrix.Flavour) []check {
	var checks []check
	for _, rp := range want.retries {
		checks = append(checks, retryChecks(f, rp)...)
	}
	return checks
}

func retryChecks(f matrix.Flavour, rp retryPolicy) []check {
	api := rp.byAPI(f)
	return []check{
		{
			name: fmt.Sprintf("%s-to-%s-retry-policy", rp.hop.from, rp.hop.to),
			run: func(m *mesh) error {
				return m.eachRoute(rp.hop, nil, func(r hopRoute) error {
					p := r.routed.route.GetRoute().GetRetryPolicy()
					if p == nil {
						return errors.New("no retry policy")
					}
					var errs []error
					if p.GetNumRetries().GetValue() != rp.attempts {
						errs = append(errs, fmt.Errorf("num_retries %d, want %d", p.GetNumRetries().GetValue(), rp.attempts))
					}
					errs = append(errs, wantDuration("per_try_timeout", p.GetPerTryTimeout(), rp.perTryTimeout))
					got := strings.Split(p.GetRetryOn(), ",")
					sort.Strings(got)
					wantOn := slices.Sorted(slices.Values(api.on))
					if !slices.Equal(got, wantOn) {
						errs = append(errs, fmt.Errorf("retry_on %v, want %v", got, wantOn))
					}
					gotCodes := slices.Sorted(slices.Values(p.GetRetriableStatusCodes()))
					if !slices.Equal(gotCodes, api.codes) {
						errs = append(errs, fmt.Errorf("retriable_status_codes %v, want %v", gotCodes, api.codes))
					}
					return errors.Join(errs...)
				})
			},
			broken: byAPI(f, []fixture{
				{"one-attempt", retriesField(rp.hop.to, "attempts", 1)},
				{"retry-on-connect-failure-only", retriesField(rp.hop.to, "retryOn", "connect-failure")},
				{"retries-removed", func(objs []object) error {
					return editRoutes(objs, rp.hop.to, func(r map[string]any) bool { return deleteIn(r, "retries") })
				}},
			}, []fixture{
				{"one-attempt", retryField(rp.hop.to, "attempts", 1)},
				{"codes-503-only", retryField(rp.hop.to, "codes", []any{503})},
				{"retry-removed", func(objs []object) error {
					return editRules(objs, "HTTPRoute", rp.hop.to, func(r map[string]any) bool { return deleteIn(r, "retry") })
				}},
			}),
		},
		envoyRetriesCheck(f, rp),
		{
			name: fmt.Sprintf("%s-to-%s-retry-budget-fits-gateway-timeout", rp.hop.from, rp.hop.to),
			run: func(m *mesh) error {
				gw, err := m.gatewayRoute(paths["client"], nil)
				if err != nil {
					return err
				}
				limit := routeTimeout(gw.route)
				return m.eachRoute(rp.hop, nil, func(r hopRoute) error {
					p := r.routed.route.GetRoute().GetRetryPolicy()
					if p.GetPerTryTimeout() == nil {
						return errors.New("no per-try timeout: tries are bounded only by the route timeout")
					}
					budget := time.Duration(p.GetNumRetries().GetValue()+1) * p.GetPerTryTimeout().AsDuration()
					if limit == 0 || budget >= limit {
						return fmt.Errorf("%d tries x %v = %v do not fit the gateway's %v", p.GetNumRetries().GetValue()+1,
							p.GetPerTryTimeout().AsDuration(), budget, limit)
					}
					return nil
				})
			},
			broken: byAPI(f, []fixture{
				{"per-try-2s", retriesField(rp.hop.to, "perTryTimeout", "2s")},
			}, []fixture{
				{"backend-request-2s", func(objs []object) error {
					return editRules(objs, "HTTPRoute", rp.hop.to, func(r map[string]any) bool {
						if str(r, "timeouts", "backendRequest") == "" {
							return false
						}
						setIn(r, "2s", "timeouts", "backendRequest")
						return true
					})
				}},
			}),
		},
	}
}

// envoyRetriesCheck: what Envoy does with the generated retry policy (Envoy's rules,
// envoy_retry_test.go), not only what istiod wrote: whether a try cut by the per-try timeout is
// retried, and which upstream statuses are. The Gateway API flavours cannot make a timed-out try
// retried (an HTTPRoute retry lists status codes only), so their fixtures break the statuses.
func envoyRetriesCheck(f matrix.Flavour, rp retryPolicy) check {
	w, ok := rp.envoy[f]
	return check{
		name: fmt.Sprintf("%s-to-%s-envoy-retries", rp.hop.from, rp.hop.to),
		run: func(m *mesh) error {
			if !ok {
				return fmt.Errorf("no expected Envoy retry behaviour for the %s flavour", f)
			}
			return m.eachRoute(rp.hop, nil, func(r hopRoute) error {
				p := r.routed.route.GetRoute().GetRetryPolicy()
				var errs []error
				if got := retriesPerTryTimeout(p); got != w.timedOutTry {
					errs = append(errs, fmt.Errorf("a try cut by the per-try timeout (%v) retried: %v, want %v (retry_on %q)",
						p.GetPerTryTimeout().AsDuration(), got, w.timedOutTry, p.GetRetryOn()))
				}
				for _, s := range w.statuses {
					if !retriesStatus(p, s) {
						errs = append(errs, fmt.Errorf("upstream %d not retried (retry_on %q, codes %v)", s, p.GetRetryOn(), p.GetRetriableStatusCodes()))
					}
				}
				for _, s := range w.notStatuses {
					if retriesStatus(p, s) {
						errs = append(errs, fmt.Errorf("upstream %d retried (retry_on %q, codes %v)", s, p.GetRetryOn(), p.GetRetriableStatusCodes()))
					}
				}
				return errors.Join(errs...)
			})
		},
		broken: byAPI(f, []fixture{
			// The status codes still retried, but no condition that retries a local reset.
			{"retry-on-without-reset-5xx-gateway-error", retriesField(rp.hop.to, "retryOn", "connect-failure,refused-stream,500,501,503,504")},
			{"retry-on-gateway-error", retriesField(rp.hop.to, "retryOn", "gateway-error,connect-failure,refused-stream")},
		}, []fixture{
			{"codes-503-only", retryField(rp.hop.to, "codes", []any{503})},
			{"code-429-added", retryField(rp.hop.to, "codes", []any{429, 500, 502, 503, 504})},
		}),
	}
}

// byAPI picks the broken fixtures of the flavour's routing API: VirtualServices with subsets
// (sidecar flavour) or HTTPRoutes and GRPCRoutes with per-version Services.
func byAPI(f matrix.Flavour, virtualService, gatewayAPI []fixture) []fixture {
	if f.GatewayAPIRoutes() {
		return gatewayAPI
	}
	return virtualService
}

// ruleMatchesHeader reports whether an HTTPRoute rule matches on a header.
func ruleMatchesHeader(r map[string]any) bool {
	for _, mt := range listAt(r, "matches") {
		if len(listAt(mt.(map[string]any), "headers")) > 0 {
			return true
		}
	}
	return false
}

// ambientUnderscoreHeaderCheck: in ambient mode the connection managers on the way are the
// ingress gateway's and the waypoint's, one per Service port.
func ambientUnderscoreHeaderCheck(header string) check {
	return check{
		name: "underscore-header-" + header + "-allowed-everywhere",
		run: func(m *mesh) error {
			var errs []error
			h, err := connectionManagerFor(m.ingress(), simulation.Call{
				Port: m.gatewayListenerPort(), HostHeader: want.gatewayHost, Protocol: simulation.HTTP,
				CallMode: simulation.CallModeGateway,
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("ingress gateway: %w", err))
			} else if a := h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a != core.HttpProtocolOptions_ALLOW {
				errs = append(errs, fmt.Errorf("ingress gateway: headers_with_underscores_action %v: %s would not arrive", a, header))
			}
			sim := m.waypoint()
			for _, svc := range []string{"client", "server1", "server2", "user-service"} {
				fc, err := waypointChainFor(sim, waypointChain(svc, want.appPort))
				if err == nil {
					h, err = httpConnectionManager(fc)
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if a := h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a != core.HttpProtocolOptions_ALLOW {
					errs = append(errs, fmt.Errorf("waypoint chain %s: headers_with_underscores_action %v: %s would not arrive", fc.GetName(), a, header))
				}
			}
			return errors.Join(errs...)
		},
		broken: []fixture{
			{"waypoint-drops-underscore-headers", func(objs []object) error {
				gw, err := one(objs, "Gateway", "waypoint")
				if err != nil {
					return err
				}
				setIn(gw, `{"connectionSettings": {"httpHeadersWithUnderscoresAction": "HEADERS_WITH_UNDERSCORES_DROP_HEADER"}}`,
					"spec", "infrastructure", "annotations", proxyConfigAnnotation)
				return nil
			}},
		},
	}
}
