# verify/pilot: every Istio scenario run through Istio's own control plane (no cluster, no Envoy).
# Its own module outside go.work (GOWORK=off): istio.io/istio pins must not leak into the workspace.
# No -race here: instrumenting all of istio.io/istio would double a cold compile of ~10 minutes,
# and the code under test is Istio's configuration generator, not concurrent meshdemo code.
TEST_TARGETS += test-pilot

# Two test processes: istiod reads PILOT_ENABLE_AMBIENT once, at start (pilot/pkg/features), and
# the ambient flavour needs it on, as istiod runs under the ambient profile; the sidecar flavours
# run istiod as the default profile does, with ambient off. TestScenarios and TestBase pick the
# flavours of their process by that variable (processFlavours), so the first process runs
# TestScenarios/{sidecar,gateway-api}/* and the second TestScenarios/ambient/*; together they
# cover every flavour × scenario, and neither skips a subtest.
# -vet=off: the target runs the full `go vet` over the same package; go test's own vet subset
# would compute its analysis facts over all ~1800 dependencies a second time on a cold cache.
.PHONY: test-pilot
test-pilot: ## pilot simulation of every Istio scenario, all three flavours (verify/pilot, GOWORK=off)
	cd verify/pilot && test -z "$$(gofmt -l .)" || { gofmt -l .; echo 'gofmt needed in verify/pilot'; exit 1; }
	cd verify/pilot && GOWORK=off $(GO) test -vet=off -count=1 -skip '^TestAmbient' ./...
	cd verify/pilot && PILOT_ENABLE_AMBIENT=true GOWORK=off $(GO) test -vet=off -count=1 -run '^(TestScenarios|TestBase|TestAmbient)' ./...
	cd verify/pilot && GOWORK=off $(GO) vet ./...
