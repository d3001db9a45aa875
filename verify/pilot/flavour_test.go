package pilot

import (
	"fmt"
	"strings"
	"testing"

	"istio.io/istio/pilot/pkg/features"
)

// flavour is one way of writing every scenario (docs/contract.md): Istio's classic API
// with sidecars, the Kubernetes Gateway API with sidecars, or the Gateway API in ambient mode.
type flavour string

const (
	sidecar    flavour = "sidecar"
	gatewayAPI flavour = "gateway-api"
	ambient    flavour = "ambient"
)

// baseDir is the flavour's istio/ base, the second resource of every render.
func (f flavour) baseDir() string {
	switch f {
	case gatewayAPI:
		return "istio/gateway-api/base"
	case ambient:
		return "istio/ambient/base"
	}
	return "istio/sidecar/base"
}

// componentDir is the flavour's component for a scenario.
func (f flavour) componentDir(scenario string) string {
	switch f {
	case gatewayAPI:
		return "istio/gateway-api/components/" + scenario
	case ambient:
		return "istio/ambient/components/" + scenario
	}
	return "istio/sidecar/components/" + scenario
}

// gatewayAPIRoutes reports whether the flavour writes its routes as HTTPRoutes and GRPCRoutes
// (with per-version Services as backends) rather than VirtualServices with subsets.
func (f flavour) gatewayAPIRoutes() bool { return f != sidecar }

// versionCluster is the Envoy cluster a route sends version v ("" = any) of svc to on port:
// a DestinationRule subset of the Service (sidecar flavour), or the per-version Service an
// HTTPRoute names as its backend (Gateway API flavours), which the waypoint names
// inbound-vip|<port>|http|<host> (ambient).
func (f flavour) versionCluster(svc, version string, port int) string {
	if !f.gatewayAPIRoutes() {
		return fmt.Sprintf("outbound|%d|%s|%s", port, version, fqdn(svc))
	}
	host := svc
	if version != "" {
		host = svc + "-" + version
	}
	if f == ambient {
		return waypointChain(host, port)
	}
	return fmt.Sprintf("outbound|%d||%s", port, fqdn(host))
}

// waypointChain names the waypoint's filter chain (and cluster) for the HTTP or gRPC port of a
// Service (pilot/pkg/networking/core: model.BuildSubsetKey(TrafficDirectionInboundVIP, "http", host, port)).
func waypointChain(svc string, port int) string {
	return fmt.Sprintf("inbound-vip|%d|http|%s", port, fqdn(svc))
}

// requireAmbient fails an ambient test run without PILOT_ENABLE_AMBIENT=true in the process
// environment. istiod reads it once at start (pilot/pkg/features/ambient.go), and so do the
// flags derived from it (the istio-waypoint GatewayClass, HBONE sending, waypoint routes): setting
// features.EnableAmbient from a test would leave those off. `make test-pilot` runs the TestAmbient
// tests in a second go test process with the variable set, as istiod runs under the ambient profile.
func requireAmbient(t *testing.T) {
	t.Helper()
	if !features.EnableAmbient || !features.EnableAmbientWaypoints {
		t.Fatal("ambient tests need PILOT_ENABLE_AMBIENT=true in the environment at process start " +
			"(istiod reads it at init); run them through `make test-pilot` or " +
			"`PILOT_ENABLE_AMBIENT=true go test -run '^TestAmbient' .`")
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

// ingressFor is the flavour's ingress gateway: istio-ingressgateway (sidecar flavour), or the
// Gateway API gateway's deployment (both Gateway API flavours).
func ingressFor(f flavour) ingressGatewaySpec {
	if f == sidecar {
		return ingressGatewaySpec{pod: gatewayPod, objects: ingressGateway}
	}
	return ingressGatewaySpec{
		pod:     gatewayAPIIngressPod,
		objects: fmt.Sprintf(gatewayAPIIngress, flowLabels(gatewayAPIIngressPod.labels)),
	}
}
