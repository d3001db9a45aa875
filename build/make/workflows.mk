# GitHub workflows (.github/workflows: ci.yml runs `make test` through .ci/run, release.yml runs
# `make release` and `make release-subjects` on a v* tag) and the shell scripts make runs.
# test-workflows: actionlint (built from the Go module pinned in build/tools/actionlint) over the
# workflows, with Debian's shellcheck over every run: block; shellcheck over every build/**/*.sh
# and .ci/run; the repository's policy for the workflows and Dependabot (build/doccheck/workflows:
# actions pinned by commit SHA, least permissions, make targets that exist, every go.mod covered),
# whose tests also run `make release-subjects` on a release made of matrix.Images().
TEST_TARGETS += test-workflows

ACTIONLINT := $(BIN)/actionlint
SHELLCHECK ?= shellcheck
# The scripts: every build/**/*.sh outside testdata, and the CI entry point.
SHELL_SCRIPTS = $(shell find build -name '*.sh' -not -path '*/testdata/*' | LC_ALL=C sort) .ci/run

.PHONY: test-workflows release-subjects

$(ACTIONLINT): build/tools/actionlint/go.mod build/tools/actionlint/go.sum
	@mkdir -p $(BIN)
	cd build/tools/actionlint && $(BUILD_ONCE) env GOWORK=off $(GO) build -o $@ github.com/rhysd/actionlint/cmd/actionlint

# After `make release`: $(RELEASE_DIR)/images.sha256, one "<index digest hex>  <repository>" line
# per image of images.json, the subject-checksums file of GitHub's build provenance action.
release-subjects: ## after make release: RELEASE_DIR/images.sha256, the images' digests for the provenance attestation
	cd deploy/matrix && GOWORK=off $(GO) run ./cmd/matrix subjects '$(RELEASE_DIR)/images.json' >'$(RELEASE_DIR)/images.sha256.tmp' \
	  || { rm -f '$(RELEASE_DIR)/images.sha256.tmp'; exit 1; }
	mv '$(RELEASE_DIR)/images.sha256.tmp' '$(RELEASE_DIR)/images.sha256'

test-workflows: $(ACTIONLINT) ## actionlint (with shellcheck) over .github/workflows, shellcheck over the build scripts, the workflow policy (build/doccheck/workflows)
	build/ensure-deb.sh shellcheck
	$(ACTIONLINT) -shellcheck "$$(command -v $(SHELLCHECK))" -pyflakes= .github/workflows/*.yml
	$(SHELLCHECK) $(SHELL_SCRIPTS)
	@out="$$(cd build/doccheck && gofmt -l workflows)"; if [ -n "$$out" ]; then echo "gofmt needed in build/doccheck: $$out"; exit 1; fi
	cd build/doccheck && GOWORK=off $(GO) vet ./workflows/...
	cd build/doccheck && GOWORK=off $(GO) test -race -count=1 -v ./workflows/...
