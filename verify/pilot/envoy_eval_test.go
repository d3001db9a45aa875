package pilot

import (
	"testing"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/networking/core/route/retry"
)

// The scenario tests rely on two small evaluators of Envoy semantics (route header matching and
// RBAC); these tables pin them to Envoy's documented behaviour.

func exact(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
}

func TestRouteMatches(t *testing.T) {
	t.Parallel()
	jason := &route.HeaderMatcher{Name: "end-user", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("jason")}}
	notJason := &route.HeaderMatcher{Name: "end-user", InvertMatch: true, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("jason")}}
	present := &route.HeaderMatcher{Name: "canary_id", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}
	regex := &route.HeaderMatcher{Name: "canary_id", HeaderMatchSpecifier: &route.HeaderMatcher_SafeRegexMatch{
		SafeRegexMatch: &matcher.RegexMatcher{Regex: "v[0-9]"},
	}}
	prefix := func(p string, hs ...*route.HeaderMatcher) *route.RouteMatch {
		return &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: p}, Headers: hs}
	}
	tests := []struct {
		name  string
		match *route.RouteMatch
		req   request
		want  bool
	}{
		{"prefix only", prefix("/server1"), request{path: "/server1/server2"}, true},
		{"prefix miss", prefix("/server2"), request{path: "/server1/server2"}, false},
		{"exact path ignores query", &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/a"}}, request{path: "/a?x=1"}, true},
		{"header exact hit", prefix("/", jason), request{path: "/", headers: map[string]string{"end-user": "jason"}}, true},
		{"header exact other value", prefix("/", jason), request{path: "/", headers: map[string]string{"end-user": "bob"}}, false},
		{"header exact missing", prefix("/", jason), request{path: "/"}, false},
		{"inverted other value", prefix("/", notJason), request{path: "/", headers: map[string]string{"end-user": "bob"}}, true},
		{"inverted missing header does not match", prefix("/", notJason), request{path: "/"}, false},
		{"present", prefix("/", present), request{path: "/", headers: map[string]string{"canary_id": ""}}, true},
		{"present missing", prefix("/", present), request{path: "/"}, false},
		{"regex is anchored", prefix("/", regex), request{path: "/", headers: map[string]string{"canary_id": "xv2"}}, false},
		{"regex hit", prefix("/", regex), request{path: "/", headers: map[string]string{"canary_id": "v2"}}, true},
		{"all headers must match", prefix("/", jason, present), request{path: "/", headers: map[string]string{"end-user": "jason"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := routeMatches(tt.match, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("routeMatches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRBACAllows(t *testing.T) {
	t.Parallel()
	client := "spiffe://cluster.local/ns/meshdemo/sa/client"
	server2 := "spiffe://cluster.local/ns/meshdemo/sa/server2"
	byPrincipal := func(ids ...string) *rbacpb.Policy {
		var or []*rbacpb.Principal
		for _, id := range ids {
			or = append(or, &rbacpb.Principal{Identifier: &rbacpb.Principal_FilterState{FilterState: &matcher.FilterStateMatcher{
				Key: "io.istio.peer_principal", Matcher: &matcher.FilterStateMatcher_StringMatch{StringMatch: exact(id)},
			}}})
		}
		return &rbacpb.Policy{
			Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_Any{Any: true}}},
			Principals:  []*rbacpb.Principal{{Identifier: &rbacpb.Principal_OrIds{OrIds: &rbacpb.Principal_Set{Ids: or}}}},
		}
	}
	filter := func(action rbacpb.RBAC_Action, policies map[string]*rbacpb.Policy) *hcm.HttpFilter {
		a, err := anypb.New(&rbachttp.RBAC{Rules: &rbacpb.RBAC{Action: action, Policies: policies}})
		if err != nil {
			t.Fatal(err)
		}
		return &hcm.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: a}}
	}
	shadowOnly, err := anypb.New(&rbachttp.RBAC{ShadowRules: &rbacpb.RBAC{Action: rbacpb.RBAC_ALLOW}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		filters []*hcm.HttpFilter
		peer    string
		want    bool
	}{
		{"no rbac filter allows", nil, server2, true},
		{"shadow rules never deny", []*hcm.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: shadowOnly}}}, server2, true},
		{"allow listed principal", []*hcm.HttpFilter{filter(rbacpb.RBAC_ALLOW, map[string]*rbacpb.Policy{"p": byPrincipal(client)})}, client, true},
		{"allow denies others", []*hcm.HttpFilter{filter(rbacpb.RBAC_ALLOW, map[string]*rbacpb.Policy{"p": byPrincipal(client)})}, server2, false},
		{"empty allow denies all", []*hcm.HttpFilter{filter(rbacpb.RBAC_ALLOW, nil)}, client, false},
		{"deny wins over allow", []*hcm.HttpFilter{
			filter(rbacpb.RBAC_DENY, map[string]*rbacpb.Policy{"d": byPrincipal(client)}),
			filter(rbacpb.RBAC_ALLOW, map[string]*rbacpb.Policy{"p": byPrincipal(client)}),
		}, client, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := rbacAllows(&hcm.HttpConnectionManager{HttpFilters: tt.filters}, peer{principal: tt.peer, method: "GET", path: "/", port: 8080})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("rbacAllows = %v, want %v", got, tt.want)
			}
		})
	}
}

// The network RBAC filter of a TCP chain: same rules, evaluated per connection on the principal
// and the destination port; the filter count lets callers insist that a filter exists at all.
func TestNetworkRBACAllows(t *testing.T) {
	t.Parallel()
	userService := "spiffe://cluster.local/ns/meshdemo/sa/user-service"
	client := "spiffe://cluster.local/ns/meshdemo/sa/client"
	policy := func(port uint32, id string) *rbacpb.Policy {
		return &rbacpb.Policy{
			Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_AndRules{AndRules: &rbacpb.Permission_Set{Rules: []*rbacpb.Permission{
				{Rule: &rbacpb.Permission_DestinationPort{DestinationPort: port}},
			}}}}},
			Principals: []*rbacpb.Principal{{Identifier: &rbacpb.Principal_Authenticated_{Authenticated: &rbacpb.Principal_Authenticated{
				PrincipalName: exact(id),
			}}}},
		}
	}
	filter := func(action rbacpb.RBAC_Action, policies map[string]*rbacpb.Policy) *listener.Filter {
		a, err := anypb.New(&rbactcp.RBAC{StatPrefix: "tcp.", Rules: &rbacpb.RBAC{Action: action, Policies: policies}})
		if err != nil {
			t.Fatal(err)
		}
		return &listener.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}}
	}
	tcpProxy := &listener.Filter{Name: "envoy.filters.network.tcp_proxy"}
	allowUS := filter(rbacpb.RBAC_ALLOW, map[string]*rbacpb.Policy{"p": policy(5432, userService)})
	tests := []struct {
		name        string
		filters     []*listener.Filter
		peer        string
		port        int
		want        bool
		wantFilters int
	}{
		{"no rbac filter allows, and says so", []*listener.Filter{tcpProxy}, client, 5432, true, 0},
		{"allowed principal on its port", []*listener.Filter{allowUS, tcpProxy}, userService, 5432, true, 1},
		{"allowed principal on another port", []*listener.Filter{allowUS, tcpProxy}, userService, 5433, false, 1},
		{"other principal", []*listener.Filter{allowUS, tcpProxy}, client, 5432, false, 1},
		{"no principal (plaintext)", []*listener.Filter{allowUS, tcpProxy}, "", 5432, false, 1},
		{"deny before allow", []*listener.Filter{filter(rbacpb.RBAC_DENY, map[string]*rbacpb.Policy{"d": policy(5432, userService)}), allowUS}, userService, 5432, false, 2},
		{"empty allow denies all", []*listener.Filter{filter(rbacpb.RBAC_ALLOW, nil), tcpProxy}, userService, 5432, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, n, err := networkRBACAllows(&listener.FilterChain{Filters: tt.filters}, peer{principal: tt.peer, port: tt.port})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("networkRBACAllows = %v, want %v", got, tt.want)
			}
			if n < 1 && tt.wantFilters > 0 || n > 0 && tt.wantFilters == 0 {
				t.Errorf("%d RBAC filters seen, want %d", n, tt.wantFilters)
			}
		})
	}
}

// Envoy's retry decisions (envoy_retry_test.go) over the policies istiod writes: its default
// policy, VirtualService retries converted by istiod's own retry.ConvertPolicy, and the policy it
// makes of an HTTPRoute retry (pilot/pkg/config/kube/gateway/conversion.go: connect-failure,
// refused-stream, unavailable, cancelled and the codes).
func TestEnvoyRetryRules(t *testing.T) {
	t.Parallel()
	vs := func(retryOn string, attempts int32, perTry time.Duration) *route.RetryPolicy {
		in := &networking.HTTPRetry{Attempts: attempts, RetryOn: retryOn}
		if perTry > 0 {
			in.PerTryTimeout = durationpb.New(perTry)
		}
		return retry.ConvertPolicy(in, false)
	}
	httpRoute := vs("connect-failure,refused-stream,unavailable,cancelled,500,502,503,504", 3, time.Second)
	tests := []struct {
		name        string
		policy      *route.RetryPolicy
		timedOutTry bool
		retried     []uint32
		notRetried  []uint32
	}{
		{"no policy", nil, false, nil, []uint32{500, 503}},
		{"istio default: connection errors only", retry.DefaultPolicy(), false, nil, []uint32{500, 503, 504}},
		{"sidecar scenario: 5xx and reset", vs("5xx,connect-failure,refused-stream,reset", 3, time.Second), true, []uint32{500, 501, 503, 504, 599}, []uint32{400, 409, 429}},
		{"HTTPRoute retry: codes only", httpRoute, false, []uint32{500, 502, 503, 504}, []uint32{400, 429, 501}},
		{"reset alone", vs("reset", 3, time.Second), true, nil, []uint32{500, 503}},
		{"5xx alone", vs("5xx", 3, time.Second), true, []uint32{500, 503}, []uint32{499}},
		{"gateway-error", vs("gateway-error", 3, time.Second), true, []uint32{502, 503, 504}, []uint32{500, 501}},
		{"reset-before-request: the timed-out try was sent", vs("reset-before-request,connect-failure", 3, time.Second), false, nil, []uint32{503}},
		{"retriable-4xx", vs("retriable-4xx", 3, time.Second), false, []uint32{409}, []uint32{400, 503}},
		{"codes in retryOn", vs("connect-failure,refused-stream,503", 3, time.Second), false, []uint32{503}, []uint32{500, 504}},
		{"no per-try timeout: no timed-out try", vs("5xx,reset", 3, 0), false, []uint32{503}, nil},
		{"zero retries", &route.RetryPolicy{RetryOn: "5xx,reset", NumRetries: wrapperspb.UInt32(0), PerTryTimeout: durationpb.New(time.Second)}, false, nil, []uint32{503}},
		{"num_retries unset means one", &route.RetryPolicy{RetryOn: " 5xx , reset", PerTryTimeout: durationpb.New(time.Second)}, true, []uint32{503}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retriesPerTryTimeout(tt.policy); got != tt.timedOutTry {
				t.Errorf("retriesPerTryTimeout(%v) = %v, want %v", tt.policy, got, tt.timedOutTry)
			}
			for _, s := range tt.retried {
				if !retriesStatus(tt.policy, s) {
					t.Errorf("retriesStatus(%v, %d) = false, want true", tt.policy, s)
				}
			}
			for _, s := range tt.notRetried {
				if retriesStatus(tt.policy, s) {
					t.Errorf("retriesStatus(%v, %d) = true, want false", tt.policy, s)
				}
			}
		})
	}
}
