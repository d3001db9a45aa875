# End-to-end suite: e2e/suite (build tag e2e) against E2E_TARGET=compose|kind (the workloads as
# processes are services/integration's), and e2e/kindflow, the kind flow's commands (run by
# `make e2e`, its dry run tested by test-e2e).
# Included by the root Makefile; GO, BIN and TEST_TARGETS come from there.
TEST_TARGETS += test-e2e

E2E_GO := cd e2e && $(GO)
E2E_TEST_FLAGS ?= -race -count=1 -timeout 20m -v
# test-e2e under CI=true fails when no Docker engine can be started, unless this is 1.
E2E_ALLOW_NO_DOCKER ?=

.PHONY: test-e2e e2e e2e-lint e2e-compose e2e-kind-dry-run

test-e2e: e2e-lint e2e-compose e2e-kind-dry-run ## the suite on docker compose (the deployed-stack smoke), and the kind flow's dry run

e2e-lint: ## gofmt and vet (with the e2e tag) of e2e/suite and e2e/kindflow
	@cd e2e && out="$$(gofmt -l suite kindflow)"; if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(E2E_GO) vet -tags e2e ./suite/... ./kindflow/...

e2e-compose: ## the suite against compose.yaml with the images of `make images` (docker compose up/down by the suite)
	@if build/docker/ensure-docker.sh; then \
		$(MAKE) --no-print-directory images loadtest || exit 1; \
		cd e2e && E2E_TARGET=compose E2E_LOADTEST=$(BIN)/loadtest $(GO) test -tags e2e $(E2E_TEST_FLAGS) ./suite || exit 1; \
	else \
		echo '!!! e2e-compose: NO DOCKER ENGINE could be started: the compose run of the e2e suite DID NOT RUN.' >&2; \
		if [ "$$CI" = true ] && [ "$(E2E_ALLOW_NO_DOCKER)" != 1 ]; then \
			echo '!!! failing because CI=true (set E2E_ALLOW_NO_DOCKER=1 to allow this)' >&2; exit 1; \
		fi; \
	fi

e2e-kind-dry-run: ## the kind flow's tests: every flavour's plan printed (TestDryRun), one deploy per declared scenario, pruning on every switch, meshed calls only from app containers
	@if command -v kubectl >/dev/null; then kz=; else $(MAKE) --no-print-directory $(KUSTOMIZE) && kz=$(KUSTOMIZE); fi; \
	cd e2e && KUSTOMIZE=$$kz $(GO) test -count=1 -race -v ./kindflow/...

# FLAVOUR (k8s.mk, default sidecar) picks the Istio install and the scenarios; the suite gets it
# as E2E_FLAVOUR. The ingress is http://127.0.0.1:8880, Host client.meshdemo, in every flavour.
e2e: ## the whole kind flow on your machine (Docker, kubectl, network) in one FLAVOUR: cluster, Istio, images (skaffold build, kind load), one deploy of the baseline, suite, teardown; KEEP_CLUSTER=1 keeps the cluster
	$(E2E_GO) run ./kindflow/cmd/e2e-kind -flavour '$(FLAVOUR)' $(if $(filter 1,$(KEEP_CLUSTER)),-keep-cluster) $(if $(E2E_RUN),-run '$(E2E_RUN)')
