// Package containers holds the container tests: the four workload images are built from
// build/Dockerfile.prebuilt (no registry pull), started on one private network under their
// Kubernetes Service names, and exercised from the host through ports published on
// 127.0.0.1 only. Run them with `make test-containers`, which starts a Docker engine
// when none answers and sets TESTCONTAINERS_RYUK_DISABLED=true and
// TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1.
//
// Without an engine every test skips with a loud message; under CI=true that fails
// instead, unless MESHDEMO_ALLOW_NO_DOCKER=1.
package containers
