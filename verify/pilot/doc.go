// Package pilot proves each Istio scenario's routing offline with Istio's own control plane.
//
// The tests render the repository's Kustomize manifests (deploy/ and istio/), feed them to
// istio.io/istio/pilot/test/xds.FakeDiscoveryServer together with the pods, service accounts
// and endpoints a cluster would create, and read the Envoy configuration istiod would push to
// the ingress gateway and to each sidecar. pilot/pkg/simulation walks a request through the
// listeners and route tables; the assertions then check the route, cluster, fault, retry,
// outlier-detection, mirroring and RBAC settings each scenario promises.
//
// Everything lives in _test.go files: the package exists only to be tested, and keeping
// istio.io/istio out of any non-test build is why it is its own module outside go.work.
package pilot
