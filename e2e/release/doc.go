// Package release proves `make release` end to end against a real OCI registry: Debian's
// docker-registry (the CNCF distribution server) started on loopback by the test, never a mock.
//
// TestReleaseRoundTrip runs `make release` twice into two folders and checks, with clients that
// did not build anything: the digests of both runs are equal; the Docker engine pulls every
// image by digest; `cosign verify` and `cosign verify-attestation` pass with the release's key
// and fail with another key and on an unsigned image; `sha256sum -c SHA256SUMS` passes and fails
// on a changed bundle; the arm64 image runs under qemu-user (binfmt) and answers /healthz; and
// docker compose, started from the pulled digests alone, answers the chain.
//
// `make test-release` installs and starts what it needs (build/release/ensure-roundtrip.sh) and
// runs it; without a Docker engine, the registry, cosign or qemu's binfmt entry it skips, saying
// which is missing, and under CI=true it fails instead.
package release
