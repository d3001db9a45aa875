// Package headers names the request headers meshdemo defines or forwards: the fault
// directive header and the list every hop copies to the calls it makes. It is exported
// (unlike the kit) so that other modules send and check the same names instead of
// keeping copies that can drift. The kit's propagation package does the copying.
package headers

// Fault carries per-call fault directives (grammar in the kit's faults package); every
// hop forwards it unchanged. gRPC metadata spells it in lower case, which grpc-go's
// metadata functions do on their own.
const Fault = "X-Meshdemo-Fault"

// Propagated returns the headers every hop forwards, lower case as written in Istio's
// docs (a fresh slice each call). Workloads add names with PROPAGATE_HEADERS.
func Propagated() []string {
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
		Fault,
	}
}
