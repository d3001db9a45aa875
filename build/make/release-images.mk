# build/release: the Go module that builds the release images (build/release/release.sh runs its
# cmd/release): every image of deploy/matrix, FROM scratch, linux/amd64 and linux/arm64, built
# reproducibly with go-containerregistry and pushed by digest, with an SPDX SBOM per image. Its
# own module outside go.work (GOWORK=off) so that go-containerregistry and the SPDX tools stay out
# of the workloads' dependency set. The tests release a tiny fixture module twice into an
# in-process registry (go-containerregistry's pkg/registry over httptest): no Docker needed.
TEST_TARGETS += test-release-images

.PHONY: test-release-images
test-release-images: ## the release image builder (build/release: reproducible multi-arch images, SBOMs, push; in-process registry)
	cd build/release && test -z "$$(gofmt -l .)" || { gofmt -l build/release; echo 'gofmt needed in build/release'; exit 1; }
	cd build/release && GOWORK=off $(GO) vet ./...
	cd build/release && GOWORK=off $(GO) test -race -count=1 ./...
