# Signing: the cosign CLI that build/release/sign.sh signs the release images and attaches their
# SBOMs with, and that e2e/release verifies them with. Built from a pinned Go module of its own
# (build/tools/cosign: cosign v3.1.3; its dependency set must not move build/tools' k8s.io modules).
# About 6-8 min of CPU cold on this machine; `make prebuild` starts it in the background.
COSIGN := $(BIN)/cosign

$(COSIGN): build/tools/cosign/go.mod build/tools/cosign/go.sum
	@mkdir -p $(BIN)
	cd build/tools/cosign && $(BUILD_ONCE) env GOWORK=off $(GO) build -trimpath -o $@ github.com/sigstore/cosign/v3/cmd/cosign

# release.mk is included before this file (build/make/*.mk in sorted order), and make expands a
# rule's prerequisites when it reads the rule: there `$(COSIGN)` was still empty. Adding the
# prerequisite here, once COSIGN is defined, makes `make release` and `make test-release` build it.
release test-release: $(COSIGN)
