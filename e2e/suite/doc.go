// Package suite is meshdemo's end-to-end suite: one set of tests driven through the front
// door of a running deployment, selected with E2E_TARGET:
//
//   - compose (the default): compose.yaml brought up by TestMain under its own project name,
//     with the images `make images` built (no registry);
//   - kind: a kind cluster with Istio (`make e2e`), reached through the ingress gateway on
//     127.0.0.1:8880 with Host client.meshdemo; scenario tests apply Istio scenarios.
//
// The tests carry the build tag e2e: go test -tags e2e ./suite. Tests that need the mesh skip
// on compose and say why; the rest run on both. The workloads as processes on loopback are
// services/integration's level, the images' own properties e2e/containers'; here compose is the
// deployed-stack smoke and kind the mesh.
package suite
