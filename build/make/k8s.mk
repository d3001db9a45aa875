# Kubernetes and Istio: render scenarios, validate them offline (verify/), and run them on kind.
# The whole kind flow with the end-to-end suite is `make e2e` (e2e/kindflow); the targets here
# are its steps for working by hand: kind-up, istio-install, deploy [SCENARIO=x], addons, kind-down
# (istio-install and deploy run e2e/kindflow's own commands, so the two paths cannot drift).
# The Istio version is pinned once, in build/istio-version; the CLIs are built from pinned Go
# modules (build/tools: istioctl + kustomize, build/tools/skaffold: skaffold) into ./bin.
TEST_TARGETS += test-verify test-preflight

ISTIO_VERSION := $(shell cat build/istio-version)
ISTIOCTL := $(BIN)/istioctl
SKAFFOLD := $(BIN)/skaffold
KUSTOMIZE := $(BIN)/kustomize
# kind: the same version as the kind config types verify/ decodes build/kind/cluster.yaml with.
KIND_VERSION := v0.30.0
KIND := $(BIN)/kind
# kube-score: static checks of the rendered manifests (verify/cli TestKubeScoreEveryScenario,
# waivers in build/kube-score/waivers.yaml). Its own module at a pinned version (go.sum checked
# against the checksum database); about 1 min 10 s of CPU to build cold.
KUBE_SCORE_VERSION := v1.20.0
KUBE_SCORE := $(BIN)/kube-score
KIND_CLUSTER := meshdemo
KUBE_CONTEXT := kind-$(KIND_CLUSTER)
KUBECTL ?= kubectl --context $(KUBE_CONTEXT)
SCENARIO ?= default
# sidecar (VirtualService), gateway-api (HTTPRoute, sidecars) or ambient (ztunnel + waypoint).
FLAVOUR ?= sidecar
# Offline Go builds outside go.work: these modules pin Istio's and skaffold's dependency sets.
TOOLS_GO := cd build/tools && GOWORK=off $(GO)

.PHONY: tools render scenarios test-verify test-preflight kind-up istio-install deploy addons kind-down

$(ISTIOCTL): build/tools/go.mod build/tools/go.sum
	@mkdir -p $(BIN)
	cd build/tools && $(BUILD_ONCE) env GOWORK=off $(GO) build -o $@ istio.io/istio/istioctl/cmd/istioctl

$(KUSTOMIZE): build/tools/go.mod build/tools/go.sum
	@mkdir -p $(BIN)
	cd build/tools && $(BUILD_ONCE) env GOWORK=off $(GO) build -o $@ sigs.k8s.io/kustomize/kustomize/v5

$(KIND):
	@mkdir -p $(BIN)
	GOWORK=off GOBIN=$(BIN) $(GO) install sigs.k8s.io/kind@$(KIND_VERSION)

$(KUBE_SCORE):
	@mkdir -p $(BIN)
	$(BUILD_ONCE) env GOWORK=off GOBIN=$(BIN) $(GO) install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)

$(SKAFFOLD): build/tools/skaffold/go.mod build/tools/skaffold/go.sum
	@mkdir -p $(BIN)
	cd build/tools/skaffold && $(BUILD_ONCE) env GOWORK=off $(GO) build -o $@ github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold

tools: $(ISTIOCTL) $(KUSTOMIZE) $(SKAFFOLD) $(KUBE_SCORE) ## build istioctl, kustomize, skaffold and kube-score from pinned modules into ./bin

render: ## print a rendered scenario: make render SCENARIO=weighted-split [FLAVOUR=sidecar|gateway-api|ambient] (default|canary|<scenario>)
	@cd verify && GOWORK=off $(GO) run ./cmd/render -root .. -flavour '$(FLAVOUR)' $(SCENARIO)

scenarios: ## regenerate deploy/scenarios/*/kustomization.yaml and skaffold.yaml from the declaration in deploy/matrix
	cd verify && GOWORK=off $(GO) run ./cmd/render -root .. -write

# go test -vet=off in test-verify and test-preflight: each target runs the full `go vet` over the
# same packages; go test's own vet subset would compute its analysis facts over every dependency
# (thousands of packages: Kubernetes, kustomize, skaffold) a second time on a cold cache.
test-verify: tools ## offline validation of deploy/, istio/, skaffold.yaml and build/kind (strict decode, rules, istioctl, skaffold, kube-score)
	cd deploy/matrix && test -z "$$(gofmt -l .)" || { gofmt -l deploy/matrix; echo 'gofmt needed'; exit 1; }
	cd deploy/matrix && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -race -count=1 ./...
	cd verify && test -z "$$(gofmt -l $$(find . -name '*.go' -not -path './pilot/*'))" || { echo 'gofmt needed in verify'; exit 1; }
	cd verify && GOWORK=off $(GO) vet ./...
	cd verify && GOWORK=off ISTIOCTL=$(ISTIOCTL) SKAFFOLD=$(SKAFFOLD) KUSTOMIZE=$(KUSTOMIZE) KUBE_SCORE=$(KUBE_SCORE) $(GO) test -race -vet=off -count=1 -timeout 30m ./...

# skaffold's own code (the module pinned in build/tools/skaffold, so the build cache is the CLI's)
# over every skaffold.yaml: config parsing with each profile, the dependency walk `skaffold run`
# and `skaffold dev` do before building, the `docker build` flags kind needs. No -race: it would
# compile skaffold's whole dependency tree a second time, and the package starts no goroutines.
test-preflight: ## skaffold's dependency walk and build flags over every skaffold.yaml, with skaffold's own code
	cd build/tools/skaffold && test -z "$$(gofmt -l preflight)" || { gofmt -l build/tools/skaffold/preflight; echo 'gofmt needed'; exit 1; }
	cd build/tools/skaffold && GOWORK=off $(GO) vet ./preflight/...
	cd build/tools/skaffold && GOWORK=off $(GO) test -vet=off -count=1 ./preflight/...

kind-up: $(KIND) ## create the kind cluster (gateway on http://127.0.0.1:8880)
	$(KIND) create cluster --config build/kind/cluster.yaml --wait 120s

# One cluster holds one flavour: istio-install and deploy refuse a cluster whose Istio was
# installed for another one (label meshdemo-flavour on istio-system); switch with
# `make kind-down kind-up istio-install FLAVOUR=...`.
istio-install: $(if $(filter 1,$(DRY_RUN)),,$(ISTIOCTL)) ## install Istio $(ISTIO_VERSION) for FLAVOUR=sidecar|gateway-api|ambient, laptop-sized, with the Gateway API CRDs of the pinned module (the commands of `make e2e`, from e2e/kindflow)
	cd e2e && $(GO) run ./kindflow/cmd/e2e-kind -cluster $(KIND_CLUSTER) -flavour '$(FLAVOUR)' -istio-install $(if $(filter 1,$(DRY_RUN)),-dry-run)

# One deploy path, the one `make e2e` and the suite use (e2e/kindflow Deploy): skaffold only builds
# (meshdemo/<w>:dev), kind loads the images, `kubectl apply -k deploy/scenarios/<profile>` (the
# scenario's directory in the flavour: retries, gateway-api-retries, ambient-retries), then
# `kubectl delete` of every object another directory renders and this one does not (apply and
# skaffold's kubectl deployer never prune), then the rollout status of what istiod creates from
# Gateway API Gateways and of the workloads. DRY_RUN=1 prints the commands.
deploy: $(if $(filter 1,$(DRY_RUN)),,$(SKAFFOLD) $(KIND)) ## build the images, load them into kind, switch to a scenario and prune the previous one: make deploy SCENARIO=retries [FLAVOUR=gateway-api]
	cd e2e && $(GO) run ./kindflow/cmd/e2e-kind -cluster $(KIND_CLUSTER) -flavour '$(FLAVOUR)' -deploy $(SCENARIO) $(if $(filter 1,$(DRY_RUN)),-dry-run)

addons: ## Prometheus, Grafana, Jaeger and Kiali of the pinned Istio release
	for a in prometheus grafana jaeger kiali; do \
	  $(KUBECTL) apply -f https://raw.githubusercontent.com/istio/istio/$(ISTIO_VERSION)/samples/addons/$$a.yaml || exit 1; done
	$(KUBECTL) -n istio-system rollout status deploy/kiali --timeout=180s
	$(KUBECTL) -n istio-system rollout status deploy/jaeger --timeout=180s
	@echo 'Kiali: kubectl --context $(KUBE_CONTEXT) -n istio-system port-forward svc/kiali 20001 (then http://localhost:20001)'
	@echo 'Jaeger: kubectl --context $(KUBE_CONTEXT) -n istio-system port-forward svc/tracing 16686:80 (then http://localhost:16686/jaeger)'

kind-down: $(KIND) ## delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
