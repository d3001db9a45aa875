# Included by the root Makefile; GO comes from there.
#
# make prefetch: download, in the background, the Go modules every test target will build, so
# that on a cold machine the downloads (about 4 GB of module zips, network-bound) overlap the
# first targets' compiles (CPU-bound) instead of each target waiting for its own. `make test`
# runs it first. It only fetches: each target still resolves its own modules and fails on its
# own if one is missing; the go command locks the module cache, so a target that needs a module
# while the prefetch holds it waits for it.
PREFETCH_LOG ?= $(or $(TMPDIR),/tmp)/meshdemo-prefetch.log

.PHONY: prefetch prebuild

prefetch: ## download in the background the Go modules the test targets build (make test runs it first)
	@echo "prefetch: downloading modules in the background (log: $(PREFETCH_LOG))"
	@( set -x; \
	  (cd e2e && $(GO) list -deps -test -tags e2e ./... >/dev/null); \
	  (cd build/tools && GOWORK=off $(GO) list -deps istio.io/istio/istioctl/cmd/istioctl sigs.k8s.io/kustomize/kustomize/v5 >/dev/null); \
	  (cd build/tools/cosign && GOWORK=off $(GO) list -deps github.com/sigstore/cosign/v3/cmd/cosign >/dev/null); \
	  (cd build/tools/actionlint && GOWORK=off $(GO) list -deps github.com/rhysd/actionlint/cmd/actionlint >/dev/null); \
	  (cd build/doccheck && GOWORK=off $(GO) list -deps -test ./... >/dev/null); \
	  (cd build/tools/skaffold && GOWORK=off $(GO) list -deps -test ./preflight/... github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold >/dev/null); \
	  (cd verify && GOWORK=off $(GO) list -deps -test ./... >/dev/null); \
	  (cd loadtest && GOWORK=off $(GO) list -deps -test ./... >/dev/null); \
	  (cd verify/netpol && GOWORK=off $(GO) list -deps -test ./... >/dev/null); \
	  (cd verify/pilot && GOWORK=off $(GO) list -deps -test ./... >/dev/null); \
	  (cd build/release && GOWORK=off $(GO) list -deps -test ./... >/dev/null); \
	) > $(PREFETCH_LOG) 2>&1 < /dev/null &

# make prebuild: build, in the background and at the lowest CPU priority (nice 19), the CLIs the
# later test targets run (kustomize, istioctl, skaffold, kube-score, cosign, actionlint), so that
# their compiles use the CPU the first targets leave idle (tests waiting on processes, containers
# and timers) instead of each starting when its target does. `make test` runs it after prefetch.
# Each CLI's rule takes a lock (build/make/build-once.sh): a target that needs a CLI still being
# built waits for it, then finds it fresh; a failed background build is simply built again there.
PREBUILD_LOG ?= $(or $(TMPDIR),/tmp)/meshdemo-prebuild.log
PREBUILD = $(KUSTOMIZE) $(ISTIOCTL) $(SKAFFOLD) $(KUBE_SCORE) $(COSIGN) $(ACTIONLINT)

prebuild: ## build in the background, at nice 19, the CLIs the later test targets need (make test runs it first)
	@echo "prebuild: building $(notdir $(PREBUILD)) in the background at nice 19 (log: $(PREBUILD_LOG))"
	@( nice -n 19 $(MAKE) --no-print-directory -k $(PREBUILD) ) > $(PREBUILD_LOG) 2>&1 < /dev/null &
