// Package propagated is the list of request headers every meshdemo hop forwards to the
// calls it makes. It is exported (unlike the kit) so that tests in other modules check
// their header tables against the one list instead of keeping a copy that can drift.
package propagated

// FaultHeader carries per-call fault directives; every hop forwards it unchanged.
const FaultHeader = "X-Meshdemo-Fault"

// Headers returns the canonical list, lower case as written in Istio's docs (a fresh
// slice each call). Workloads add names with PROPAGATE_HEADERS.
func Headers() []string {
	return []string{
		// Envoy / Istio
		"x-request-id",
		// W3C trace context and baggage
		"traceparent", "tracestate", "baggage",
		// Zipkin B3, single and multi header
		"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
		// Lightstep / OpenTracing, Google Cloud, gRPC, SkyWalking
		"x-ot-span-context", "x-cloud-trace-context", "grpc-trace-bin", "sw8",
		// Datadog
		"x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority",
		// routing headers used by VirtualService matches
		"end-user", "user-agent", "cookie", "canary_id", "x-canary",
		// per-call app-level faults
		FaultHeader,
	}
}
