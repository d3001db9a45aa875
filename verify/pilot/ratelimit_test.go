package pilot

import (
	"errors"
	"fmt"
	"slices"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	localrl "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/meshdemo/meshdemo/deploy/matrix"
)

const (
	localRateLimitFilter = "envoy.filters.http.local_ratelimit"
	routerFilter         = "envoy.filters.http.router"
)

// localRateLimit returns the local rate limit filter of an HTTP connection manager and its
// position among the HTTP filters, or nil if the chain has none.
func localRateLimit(h *hcm.HttpConnectionManager) (*localrl.LocalRateLimit, int, error) {
	for i, f := range h.GetHttpFilters() {
		if f.GetName() != localRateLimitFilter {
			continue
		}
		cfg := &localrl.LocalRateLimit{}
		if err := unwrap(f.GetTypedConfig(), cfg); err != nil {
			return nil, i, fmt.Errorf("%s config: %w", localRateLimitFilter, err)
		}
		return cfg, i, nil
	}
	return nil, -1, nil
}

// inboundFilters is the HTTP connection manager of p's inbound chain on port.
func (m *mesh) inboundFilters(p pod, port int) (*hcm.HttpConnectionManager, error) {
	fc, err := inboundChain(m.simulate(p, sidecarType), p, port)
	if err != nil {
		return nil, err
	}
	return httpConnectionManager(fc)
}

// bucketMatches compares a LocalRateLimit with the table.
func bucketMatches(cfg *localrl.LocalRateLimit, rl rateLimit) error {
	var errs []error
	tb := cfg.GetTokenBucket()
	if tb.GetMaxTokens() != rl.maxTokens {
		errs = append(errs, fmt.Errorf("max_tokens %d, want %d", tb.GetMaxTokens(), rl.maxTokens))
	}
	if tb.GetTokensPerFill().GetValue() != rl.tokensPerFill {
		errs = append(errs, fmt.Errorf("tokens_per_fill %d, want %d", tb.GetTokensPerFill().GetValue(), rl.tokensPerFill))
	}
	if err := wantDuration("fill_interval", tb.GetFillInterval(), rl.fillInterval); err != nil {
		errs = append(errs, err)
	}
	for what, f := range map[string]*typev3.FractionalPercent{
		"filter_enabled": cfg.GetFilterEnabled().GetDefaultValue(), "filter_enforced": cfg.GetFilterEnforced().GetDefaultValue(),
	} {
		// Envoy's default for an unset runtime fraction is 0 %: the filter would do nothing.
		if f == nil || percent(f) != float64(rl.pct) {
			errs = append(errs, fmt.Errorf("%s %v, want %d %%", what, f, rl.pct))
		}
	}
	if got := uint32(cfg.GetStatus().GetCode()); got != rl.status {
		errs = append(errs, fmt.Errorf("status %d, want %d", got, rl.status))
	}
	if !slices.ContainsFunc(cfg.GetResponseHeadersToAdd(), func(h *core.HeaderValueOption) bool {
		return h.GetHeader().GetKey() == rl.header && h.GetHeader().GetValue() == rl.headerValue
	}) {
		errs = append(errs, fmt.Errorf("response header %s: %s not added (have %v)", rl.header, rl.headerValue, cfg.GetResponseHeadersToAdd()))
	}
	if cfg.GetRateLimitedAsResourceExhausted() != rl.grpcResourceExhausted {
		errs = append(errs, fmt.Errorf("rate_limited_as_resource_exhausted %v, want %v", cfg.GetRateLimitedAsResourceExhausted(), rl.grpcResourceExhausted))
	}
	return errors.Join(errs...)
}

// rate-limit: server2's sidecar limits inbound requests on every port of the table, with the
// table's bucket, just before the router; no other workload is limited.
func rateLimitChecks(f matrix.Flavour) []check {
	rl := want.rateLimit
	editFilter := func(edit func(spec map[string]any) bool) func(objs []object) error {
		return func(objs []object) error {
			efs := findObjects(objs, "EnvoyFilter", nil)
			changed := false
			for _, ef := range efs {
				if edit(ef.spec()) {
					changed = true
				}
			}
			if !changed {
				return fmt.Errorf("%w: no EnvoyFilter had the field to break (%d EnvoyFilters)", errNoTarget, len(efs))
			}
			return nil
		}
	}
	eachBucket := func(edit func(cfg map[string]any)) func(objs []object) error {
		return editFilter(func(spec map[string]any) bool {
			n := 0
			for _, cp := range listAt(spec, "configPatches") {
				if cfg := mapAt(cp.(map[string]any), "patch", "value", "typed_config"); cfg != nil {
					edit(cfg)
					n++
				}
			}
			return n > 0
		})
	}
	selector := func(name string, labels map[string]any) fixture {
		return fixture{name, editFilter(func(spec map[string]any) bool {
			if spec["workloadSelector"] == nil {
				return false
			}
			if labels == nil {
				delete(spec, "workloadSelector")
			} else {
				spec["workloadSelector"] = map[string]any{"labels": labels}
			}
			return true
		})}
	}
	onePort := func(port int) fixture {
		return fixture{fmt.Sprintf("port-%d-only", port), editFilter(func(spec map[string]any) bool {
			for _, cp := range listAt(spec, "configPatches") {
				setIn(cp.(map[string]any), port, "match", "listener", "portNumber")
			}
			return len(listAt(spec, "configPatches")) > 0
		})}
	}
	wrongSelector := selector("selector-app-server1", map[string]any{"app": "server1"})
	return []check{
		{
			name: fmt.Sprintf("%s-inbound-local-rate-limit", rl.service),
			run: func(m *mesh) error {
				pods, err := m.workloads(rl.service)
				if err != nil {
					return err
				}
				var errs []error
				for _, p := range pods {
					for _, port := range rl.ports {
						h, err := m.inboundFilters(p, port)
						if err != nil {
							errs = append(errs, err)
							continue
						}
						cfg, i, err := localRateLimit(h)
						switch {
						case err != nil:
							errs = append(errs, fmt.Errorf("%s inbound %d: %w", p.name, port, err))
							continue
						case cfg == nil:
							errs = append(errs, fmt.Errorf("%s inbound %d: no %s", p.name, port, localRateLimitFilter))
							continue
						}
						filters := h.GetHttpFilters()
						if i != len(filters)-2 || filters[len(filters)-1].GetName() != routerFilter {
							errs = append(errs, fmt.Errorf("%s inbound %d: %s is filter %d of %d, want it just before the router", p.name, port, localRateLimitFilter, i, len(filters)))
						}
						if err := bucketMatches(cfg, rl); err != nil {
							errs = append(errs, fmt.Errorf("%s inbound %d: %w", p.name, port, err))
						}
					}
				}
				return errors.Join(errs...)
			},
			broken: []fixture{
				wrongSelector,
				{"max-tokens-100", eachBucket(func(cfg map[string]any) { setIn(cfg, 100, "token_bucket", "max_tokens") })},
				{"fill-interval-60s", eachBucket(func(cfg map[string]any) { setIn(cfg, "60s", "token_bucket", "fill_interval") })},
				{"not-enforced", eachBucket(func(cfg map[string]any) { delete(cfg, "filter_enforced") })},
				{"status-503", eachBucket(func(cfg map[string]any) { setIn(cfg, "ServiceUnavailable", "status", "code") })},
				{"grpc-unavailable", eachBucket(func(cfg map[string]any) { delete(cfg, "rate_limited_as_resource_exhausted") })},
				{"header-dropped", eachBucket(func(cfg map[string]any) { delete(cfg, "response_headers_to_add") })},
				onePort(want.grpcPort),
				onePort(want.appPort),
				{"inserted-first", editFilter(func(spec map[string]any) bool {
					for _, cp := range listAt(spec, "configPatches") {
						setIn(cp.(map[string]any), "INSERT_FIRST", "patch", "operation")
					}
					return len(listAt(spec, "configPatches")) > 0
				})},
			},
		},
		{
			name: fmt.Sprintf("only-%s-rate-limited", rl.service),
			run: func(m *mesh) error {
				var errs []error
				for _, p := range m.pods {
					if p.labels["app"] == rl.service {
						continue
					}
					for _, port := range []int{want.appPort, want.grpcPort} {
						if p.labels["app"] == "user-service" && port == want.grpcPort {
							continue // user-service has no gRPC port
						}
						h, err := m.inboundFilters(p, port)
						if err != nil {
							errs = append(errs, err)
							continue
						}
						if cfg, _, _ := localRateLimit(h); cfg != nil {
							errs = append(errs, fmt.Errorf("%s inbound %d carries %s", p.name, port, localRateLimitFilter))
						}
					}
				}
				return errors.Join(errs...)
			},
			broken: []fixture{wrongSelector, selector("selector-removed", nil)},
		},
	}
}
