# verify/netpol: the NetworkPolicies of every render, in every flavour, through a NetworkPolicy
# engine's own code (cyclonus's matcher): exactly the call graph is allowed. Its own module outside
# go.work (GOWORK=off) so that the engine's client-go stays out of verify's race-enabled build; no
# -race: the code under test is the policy engine's, run from one goroutine per render.
TEST_TARGETS += test-netpol

.PHONY: test-netpol
test-netpol: ## NetworkPolicies of every render against the expected call graph (verify/netpol, GOWORK=off)
	cd verify/netpol && test -z "$$(gofmt -l .)" || { gofmt -l verify/netpol; echo 'gofmt needed in verify/netpol'; exit 1; }
	cd verify/netpol && GOWORK=off $(GO) vet ./...
	cd verify/netpol && GOWORK=off $(GO) test -vet=off -count=1 ./...
