// Package matrix is meshdemo's one declaration of its workloads, its flavours (the three ways it
// uses Istio) and its scenarios. Everything that needs one of these lists reads it from here: the
// offline proofs (verify, verify/pilot, verify/netpol), the kind end-to-end path (e2e), the
// generated deploy/scenarios/* and skaffold profiles, the docs checks and the Makefile (through
// cmd/matrix). Adding a scenario is one entry in scenarios below, one component folder per
// flavour (istio/<flavour>/components/<name>), its expectations and its docs row.
//
// The package has no dependencies, so every module can require it.
package matrix

// Scenario is one Istio scenario (or a preset): its name is the component folder under each
// flavour, the skaffold profile, the pilot subtest and the kind test; Purpose is the README's
// "what it shows" cell, word for word (build/doccheck compares them).
type Scenario struct {
	Name    string
	Purpose string
}

// Workload is one of the four workloads: services/<name>, the image meshdemo/<name>, the
// Deployment <name>-v1 (and -v2 with the canary, except client).
type Workload struct {
	Name    string
	Purpose string
}

// presets are the deploy/scenarios that are not Istio scenarios.
var presets = []Scenario{
	{"default", "v1 only: gateway → client (5 s timeout), STRICT mTLS, Envoy access log"},
	{"canary", "v1 and v2 of server1, server2 and user-service deployed (user-service v1 and v2 on one PostgreSQL); the base routes still send everything to v1"},
}

// scenarios are the Istio scenarios, in the order the docs and the kind suite show them.
var scenarios = []Scenario{
	{"header-routing", "`end-user: jason` → server1 v2 and user-service v2; `canary_id: v2` → server2 v2"},
	{"weighted-split", "server1 split 80/20 between v1 and v2"},
	{"route-timeout", "a 1 s route timeout against a 2 s injected delay: `504`"},
	{"fault-abort", "Envoy aborts half of server1 → server2 with `400`, every client → user-service with `503`"},
	{"fault-delay", "Envoy delays server1 → server2 by 3 s, below the 5 s timeout: `200`"},
	{"retries", "3 retries with a 1 s per-try timeout on server1 → server2 and client → user-service; `attempt=N` in the path header; `Idempotency-Key` keeps a retried `POST` to one user"},
	{"outlier-detection", "a sick server2 pod is ejected after 3 consecutive 5xx; connection-pool limits"},
	{"mirroring", "every call to server2 v1 copied to v2, its answers discarded"},
	{"authz", "AuthorizationPolicies allow only the real call graph; everything else gets `403`"},
	{"hardening", "the gateway strips `X-Meshdemo-Fault`; inside the mesh it still works"},
	{"grpc-balancing", "`/client/grpc`: one HTTP/2 connection from client, yet its calls spread over three server1 pods (per-request balancing, `LEAST_REQUEST`)"},
	{"rate-limit", "server2's sidecar admits 10 requests/s per pod and port (Envoy local rate limit), `429` beyond that"},
}

// workloads are the four workloads, in call order.
var workloads = []Workload{
	{"client", "the front door: the chain over HTTP and gRPC, and the users API"},
	{"server1", "the middle of the chain"},
	{"server2", "the end of the chain: a JSON object"},
	{"user-service", "CRUD on /api/users, each record stamped with the version that wrote it"},
}

// flavours are the three ways meshdemo uses Istio; their behaviour is on Flavour.
var flavours = []flavourInfo{
	{Sidecar, "Envoy sidecar per pod; routes as VirtualService, DestinationRule subsets and an Istio Gateway"},
	{GatewayAPI, "Envoy sidecar per pod; routes as Gateway API HTTPRoute/GRPCRoute (GAMMA) to per-version Services, a Gateway API ingress"},
	{Ambient, "no sidecars: ztunnel (L4, mTLS) and one waypoint (L7) applying the same HTTPRoutes"},
}

type flavourInfo struct {
	flavour Flavour
	purpose string
}

// Scenarios lists the Istio scenarios.
func Scenarios() []Scenario { return clone(scenarios) }

// Presets lists the presets: default (v1 only) and canary (v1 and v2, the base routes).
func Presets() []Scenario { return clone(presets) }

// ScenarioNames lists the scenarios' names.
func ScenarioNames() []string { return names(scenarios) }

// PresetNames lists the presets' names.
func PresetNames() []string { return names(presets) }

// Workloads lists the workloads.
func Workloads() []Workload { return clone(workloads) }

// WorkloadNames lists the workloads' names.
func WorkloadNames() []string {
	out := make([]string, len(workloads))
	for i, w := range workloads {
		out[i] = w.Name
	}
	return out
}

// IsScenario tells whether name is a declared scenario.
func IsScenario(name string) bool { return has(scenarios, name) }

// IsPreset tells whether name is a declared preset.
func IsPreset(name string) bool { return has(presets, name) }

func clone[T any](s []T) []T { return append([]T(nil), s...) }

func names(s []Scenario) []string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = sc.Name
	}
	return out
}

func has(s []Scenario, name string) bool {
	for _, sc := range s {
		if sc.Name == name {
			return true
		}
	}
	return false
}
