package workload

import "runtime/debug"

// DefaultGCPercent is the GOGC a workload runs with when its environment sets none.
//
// A workload's live heap is 1–1.5 MiB, so under the runtime's default (GOGC=100, whose
// heap goal is never below 4 MiB) it collects after every 2–2.5 MiB allocated: on the
// gRPC chain every 130–340 requests depending on the hop, twice as often per request as
// a plain grpc-go hop.
// The pods are short of CPU (limit 200m) and rich in memory (limit 64Mi, about 20 MiB
// used), so the kit trades memory for CPU: 150 raises the minimum goal to 6 MiB, runs
// about a third fewer collections and adds about 2 MiB of RSS. docs/benchmark.md has
// the figures; GOGC in the environment (a number or "off") still wins.
const DefaultGCPercent = 150

// setGCPercent applies DefaultGCPercent unless GOGC is set (the runtime has then applied
// it at start). The percent in force is the go_gc_gogc_percent metric.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
