// Package faults makes a workload misbehave on purpose, so that a mesh's timeouts,
// retries and outlier detection can be shown doing their job: a fixed delay or a
// latency distribution, an error rate, a "sick" switch per instance, and per-call
// directives in the X-Meshdemo-Fault request header that target one hop by name.
//
// Contract with the workloads:
//
//   - Config is embedded (no envPrefix) in each workload's config and parsed by
//     caarlos0/env; New validates it again.
//   - Middleware wraps only the workload API routes. It is never mounted on /healthz,
//     /readyz or the admin port: a sick or slow instance must stay Ready so that Envoy's
//     outlier detection, not Kubernetes, is what removes it. This package does not
//     filter routes itself.
//   - AdminRoutes (or AdminHandler) is mounted on the admin port: POST /admin/sick,
//     POST /admin/healthy, GET /admin/faults.
//   - Status goes into /readyz's body; it never changes the readiness status code.
//   - The propagation layer forwards X-Meshdemo-Fault unchanged to the next hop; each
//     hop applies only the directives naming its SERVICE_NAME (see ParseDirectives for
//     the grammar). With FAULT_HEADER_ENABLED=false the header is ignored, not rejected.
//   - Every error answer is application/problem+json (package problem) with a
//     urn:meshdemo:fault:* type, so an injected failure is recognisable after relaying.
//
// Delays wait on a timer and the request context together: when the caller goes away
// the sleep ends at once and no goroutine is left behind.
package faults
