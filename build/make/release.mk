# Releases: versioned, multi-arch, signed images and one install bundle per scenario and flavour.
# Included by the root Makefile; GO, BIN and TEST_TARGETS come from there, COSIGN from signing.mk.
#
#   make release REGISTRY=<host[:port]/path> VERSION=<vX.Y.Z>   # build/release/release.sh
#
# test-release is the round trip of issue-level acceptance (e2e/release): a real registry
# (Debian's docker-registry on loopback, started by the test), `make release` twice, docker pull
# by digest, cosign verify (pass, wrong key, unsigned), sha256sum -c, the arm64 image under qemu,
# docker compose from the digests.
TEST_TARGETS += test-release

RELEASE_DIR ?= $(CURDIR)/dist/release
RELEASE_TEST_TIMEOUT ?= 40m

.PHONY: release test-release

release: $(COSIGN) ## build, push, sign and bundle: make release REGISTRY=host[:port]/path VERSION=vX.Y.Z (COSIGN_KEY=… or COSIGN_KEYLESS=1; else a throw-away key, public half in dist/release/cosign.pub)
	@test -n '$(REGISTRY)' || { echo 'make release: REGISTRY=<host[:port]/path> is required' >&2; exit 2; }
	@test -n '$(VERSION)' || { echo 'make release: VERSION=<vX.Y.Z> is required' >&2; exit 2; }
	REGISTRY='$(REGISTRY)' VERSION='$(VERSION)' RELEASE_DIR='$(RELEASE_DIR)' GO='$(GO)' COSIGN='$(COSIGN)' build/release/release.sh

test-release: $(COSIGN) ## the release round trip against a local registry (installs docker-registry and qemu-user-static, starts dockerd)
	@build/release/ensure-roundtrip.sh || echo '!!! test-release: a prerequisite is missing (see above); the round trip will SKIP (CI fails it).' >&2
	cd e2e && test -z "$$(gofmt -l release)" || { gofmt -l e2e/release; echo 'gofmt needed'; exit 1; }
	cd e2e && $(GO) vet ./release/...
	cd e2e && COSIGN=$(COSIGN) $(GO) test -count=1 -timeout $(RELEASE_TEST_TIMEOUT) -v ./release/...
