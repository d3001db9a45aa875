# verify/pilot: every Istio scenario run through Istio's own control plane (no cluster, no Envoy).
# Its own module outside go.work (GOWORK=off): istio.io/istio pins must not leak into the workspace.
# No -race here: instrumenting all of istio.io/istio would double a cold compile of ~10 minutes,
# and the code under test is Istio's configuration generator, not concurrent meshdemo code.
TEST_TARGETS += test-pilot

.PHONY: test-pilot
test-pilot: ## pilot simulation of every Istio scenario (verify/pilot, GOWORK=off)
	cd verify/pilot && test -z "$$(gofmt -l .)" || { gofmt -l .; echo 'gofmt needed in verify/pilot'; exit 1; }
	cd verify/pilot && GOWORK=off $(GO) test -count=1 ./...
	cd verify/pilot && GOWORK=off $(GO) vet ./...
