package pilot

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"istio.io/istio/pilot/pkg/features"
)

// flavourSpec is what verify/pilot needs to know about a flavour beyond what deploy/matrix
// declares (its layout, Sidecars, GatewayAPIRoutes, InstallFiles): how the cluster around the
// rendered manifests looks to istiod and what the flavour's base promises. Every difference
// between the flavours that the simulation depends on is a field here, read through spec(f);
// where matrix.Flavour's own methods state the fact, the code asks them instead.
type flavourSpec struct {
	// base: what the flavour's base promises, inherited by every scenario of the flavour.
	base func() []check
	// ingress: the ingress gateway as the cluster runs it.
	ingress func() ingressGatewaySpec
	// controllerObjects: what istiod's controllers create besides the ingress (the waypoint's
	// Deployment, Service and ServiceAccount for the Gateway meshdemo/waypoint).
	controllerObjects string
	// kubeIstioKinds: Istio kinds the API server must hold as well as the config store: the
	// ambient index (ztunnel's policies) reads AuthorizationPolicy and PeerAuthentication there.
	kubeIstioKinds []string
}

// flavours is the one table of the flavours' differences; a flavour of deploy/matrix missing here
// fails every test that meets it (spec).
var flavours = map[matrix.Flavour]flavourSpec{
	matrix.Sidecar: {
		base:    baseChecks,
		ingress: func() ingressGatewaySpec { return ingressGatewaySpec{pod: gatewayPod, objects: ingressGateway} },
	},
	matrix.GatewayAPI: {
		base:    gatewayAPIBaseChecks,
		ingress: gatewayAPIIngressSpec,
	},
	matrix.Ambient: {
		base:              ambientBaseChecks,
		ingress:           gatewayAPIIngressSpec,
		controllerObjects: fmt.Sprintf(waypointObjects, flowLabels(waypointPod.labels)),
		kubeIstioKinds:    []string{"AuthorizationPolicy", "PeerAuthentication"},
	},
}

// spec is the flavour's row of flavours.
func spec(t testing.TB, f matrix.Flavour) flavourSpec {
	t.Helper()
	s, ok := flavours[f]
	if !ok {
		t.Fatalf("flavour %s (deploy/matrix) has no row in verify/pilot's flavours table", f)
	}
	return s
}

// processFlavours are the flavours this test process simulates. istiod reads
// PILOT_ENABLE_AMBIENT once, at start (pilot/pkg/features/ambient.go), and so do the flags derived
// from it (the istio-waypoint GatewayClass, HBONE sending, waypoint routes): the flavour without
// sidecars (ambient) needs it on, as istiod runs under the ambient profile, and the sidecar
// flavours need it off, as under the default profile. `make test-pilot` runs two processes, one
// per setting, so every flavour runs in exactly one of them and none is skipped.
func processFlavours() []matrix.Flavour {
	var out []matrix.Flavour
	for _, f := range matrix.Flavours() {
		if !f.Sidecars() == features.EnableAmbient {
			out = append(out, f)
		}
	}
	return out
}

// versionCluster is the Envoy cluster a route sends version v ("" = any) of svc to on port:
// at a sidecar, a DestinationRule subset of the Service (VirtualService routes) or the
// per-version Service an HTTPRoute names as its backend; at the waypoint of a flavour without
// sidecars, that Service's waypoint chain.
func versionCluster(f matrix.Flavour, svc, version string, port int) string {
	if f.Sidecars() {
		return outboundCluster(f, svc, version, port)
	}
	return waypointChain(versionHost(svc, version), port)
}

// outboundCluster is the outbound cluster a sidecar or a gateway names for version v of svc.
func outboundCluster(f matrix.Flavour, svc, version string, port int) string {
	if !f.GatewayAPIRoutes() {
		return fmt.Sprintf("outbound|%d|%s|%s", port, version, fqdn(svc))
	}
	return fmt.Sprintf("outbound|%d||%s", port, fqdn(versionHost(svc, version)))
}

// versionHost is the per-version Service of the Gateway API flavours (svc itself for "").
func versionHost(svc, version string) string {
	if version == "" {
		return svc
	}
	return svc + "-" + version
}

// waypointChain names the waypoint's filter chain (and cluster) for the HTTP or gRPC port of a
// Service (pilot/pkg/networking/core: model.BuildSubsetKey(TrafficDirectionInboundVIP, "http", host, port)).
func waypointChain(svc string, port int) string {
	return fmt.Sprintf("inbound-vip|%d|http|%s", port, fqdn(svc))
}

// requireAmbient fails a test of the ambient flavour in a process without
// PILOT_ENABLE_AMBIENT=true (processFlavours says why).
func requireAmbient(t *testing.T) {
	t.Helper()
	if !features.EnableAmbient || !features.EnableAmbientWaypoints {
		t.Fatal("the ambient flavour needs PILOT_ENABLE_AMBIENT=true in the environment at process start " +
			"(istiod reads it at init); run it through `make test-pilot` or " +
			"`PILOT_ENABLE_AMBIENT=true go test -run '^(TestScenarios|TestBase|TestAmbient)' .`")
	}
}

// ingressGatewaySpec is the ingress proxy of a flavour as the cluster runs it.
type ingressGatewaySpec struct {
	pod pod
	// objects are the Kubernetes objects that exist for it: what `istioctl install` creates
	// (sidecar flavour) or what istiod's deployment controller creates for the Gateway API
	// Gateway (the kube-gateway template: Service, pod, EndpointSlice, ServiceAccount).
	objects string
}

// waypointPod is the ambient flavour's waypoint as istiod's deployment controller creates it
// from the Gateway meshdemo/waypoint (the waypoint template): Deployment, Service and
// ServiceAccount `waypoint`, the Service's one port mesh 15008 (appProtocol hbone).
var waypointPod = pod{
	name: "waypoint-0", namespace: namespace, ip: "10.244.2.2", serviceAccount: "waypoint",
	labels: map[string]string{
		"gateway.networking.k8s.io/gateway-name":       "waypoint",
		"gateway.networking.k8s.io/gateway-class-name": "istio-waypoint",
		"gateway.istio.io/managed":                     "istio.io-mesh-controller",
		"istio.io/dataplane-mode":                      "none",
		"sidecar.istio.io/inject":                      "false",
		"service.istio.io/canonical-name":              "waypoint",
		"service.istio.io/canonical-revision":          "latest",
		"istio.io/waypoint-for":                        "service",
	},
}

const waypointObjects = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: waypoint
  namespace: meshdemo
  labels: {gateway.networking.k8s.io/gateway-name: waypoint}
---
apiVersion: v1
kind: Service
metadata:
  name: waypoint
  namespace: meshdemo
  labels:
    gateway.networking.k8s.io/gateway-name: waypoint
    gateway.networking.k8s.io/gateway-class-name: istio-waypoint
    istio.io/waypoint-for: service
spec:
  clusterIP: 10.96.200.1
  selector: {gateway.networking.k8s.io/gateway-name: waypoint}
  ports:
  - {name: mesh, port: 15008, targetPort: 15008, protocol: TCP, appProtocol: hbone}
---
apiVersion: v1
kind: Pod
metadata:
  name: waypoint-0
  namespace: meshdemo
  labels: ` + "%s" + `
spec:
  serviceAccountName: waypoint
  nodeName: kind-worker
  containers:
  - name: istio-proxy
    image: istio/proxyv2
    ports:
    - {containerPort: 15008, protocol: TCP, name: mesh}
status:
  phase: Running
  podIP: 10.244.2.2
  podIPs: [{ip: 10.244.2.2}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: waypoint-0
  namespace: meshdemo
  labels: {kubernetes.io/service-name: waypoint}
addressType: IPv4
endpoints:
- addresses: [10.244.2.2]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: waypoint-0, namespace: meshdemo}
ports:
- {name: mesh, port: 15008, protocol: TCP, appProtocol: hbone}
`

// gatewayAPIIngressPod is the pod of the Gateway istio-ingress/meshdemo-gateway.
var gatewayAPIIngressPod = pod{
	name: "meshdemo-gateway-istio-0", namespace: "istio-ingress", ip: "10.244.1.3",
	serviceAccount: "meshdemo-gateway-istio",
	labels: map[string]string{
		"gateway.networking.k8s.io/gateway-name":       "meshdemo-gateway",
		"gateway.networking.k8s.io/gateway-class-name": "istio",
		"gateway.istio.io/managed":                     "istio.io-gateway-controller",
		"sidecar.istio.io/inject":                      "false",
		"service.istio.io/canonical-name":              "meshdemo-gateway-istio",
		"service.istio.io/canonical-revision":          "latest",
	},
}

// gatewayAPIIngress: what istiod's deployment controller creates for the Gateway (kube-gateway
// template): ServiceAccount, Service and Deployment meshdemo-gateway-istio. The Service carries
// the listener's port as is (80, named after the listener, no targetPort: the pod's Envoy
// listens on 80) and the status port; the ConfigMap's overlay makes it a NodePort.
const gatewayAPIIngress = `apiVersion: v1
kind: Node
metadata:
  name: kind-worker
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: meshdemo-gateway-istio
  namespace: istio-ingress
  labels: {gateway.networking.k8s.io/gateway-name: meshdemo-gateway}
---
apiVersion: v1
kind: Service
metadata:
  name: meshdemo-gateway-istio
  namespace: istio-ingress
  labels:
    gateway.networking.k8s.io/gateway-name: meshdemo-gateway
    gateway.networking.k8s.io/gateway-class-name: istio
spec:
  type: NodePort
  clusterIP: 10.96.100.2
  selector: {gateway.networking.k8s.io/gateway-name: meshdemo-gateway}
  ports:
  - {name: status-port, port: 15021, targetPort: 15021, protocol: TCP, appProtocol: tcp}
  - {name: http, port: 80, targetPort: 80, protocol: TCP, appProtocol: http, nodePort: 30080}
---
apiVersion: v1
kind: Pod
metadata:
  name: meshdemo-gateway-istio-0
  namespace: istio-ingress
  labels: ` + "%s" + `
spec:
  serviceAccountName: meshdemo-gateway-istio
  nodeName: kind-worker
  containers:
  - name: istio-proxy
    image: istio/proxyv2
    ports:
    - {containerPort: 15021, protocol: TCP, name: status-port}
status:
  phase: Running
  podIP: 10.244.1.3
  podIPs: [{ip: 10.244.1.3}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: meshdemo-gateway-istio-0
  namespace: istio-ingress
  labels: {kubernetes.io/service-name: meshdemo-gateway-istio}
addressType: IPv4
endpoints:
- addresses: [10.244.1.3]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: meshdemo-gateway-istio-0, namespace: istio-ingress}
ports:
- {name: status-port, port: 15021, protocol: TCP}
- {name: http, port: 80, protocol: TCP}
`

// flowLabels renders a label map as a YAML flow mapping.
func flowLabels(l map[string]string) string {
	var kv []string
	for k, v := range l {
		kv = append(kv, fmt.Sprintf("%q: %q", k, v))
	}
	return "{" + strings.Join(kv, ", ") + "}"
}

// gatewayAPIIngressSpec is the Gateway API gateway's deployment (both Gateway API flavours).
func gatewayAPIIngressSpec() ingressGatewaySpec {
	return ingressGatewaySpec{
		pod:     gatewayAPIIngressPod,
		objects: fmt.Sprintf(gatewayAPIIngress, flowLabels(gatewayAPIIngressPod.labels)),
	}
}
