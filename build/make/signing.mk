# Signing: the cosign CLI that build/release/sign.sh signs the release images and attaches their
# SBOMs with, and that e2e/release verifies them with. Built from a pinned Go module of its own
# (build/tools/cosign: cosign v3.1.3; its dependency set must not move build/tools' k8s.io modules).
# Measured on this machine with a warm module cache and a cold build cache for cosign's packages:
# 7 min 1 s wall at nice 10 beside other builds (5 min 15 s user CPU); `make prebuild` starts it in
# the background. The binary is 141 MB (it links every KMS provider cosign supports).
COSIGN := $(BIN)/cosign

$(COSIGN): build/tools/cosign/go.mod build/tools/cosign/go.sum
	@mkdir -p $(BIN)
	cd build/tools/cosign && $(BUILD_ONCE) env GOWORK=off $(GO) build -trimpath -o $@ github.com/sigstore/cosign/v3/cmd/cosign

# release.mk is included before this file (build/make/*.mk in sorted order), and make expands a
# rule's prerequisites when it reads the rule: there `$(COSIGN)` was still empty. Adding the
# prerequisite here, once COSIGN is defined, makes `make release` and `make test-release` build it.
release test-release: $(COSIGN)
