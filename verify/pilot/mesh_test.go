package pilot

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	istiomesh "istio.io/istio/pkg/config/mesh"
)

const (
	namespace    = "meshdemo"
	trustDomain  = "cluster.local"
	istioVersion = "1.31.1" // the proxy version istiod believes it is talking to
	gatewayNS    = "istio-system"
)

// spiffeID is the identity a pod's sidecar presents in mTLS, the value RBAC principals match.
func spiffeID(ns, sa string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, ns, sa)
}

// pod is what the fake API server holds for one Deployment: one ready replica is enough,
// since routing and policy depend on labels and identity, not on the replica count.
type pod struct {
	name, namespace, ip, serviceAccount string
	labels                              map[string]string
	// proxyConfig is the mesh default merged with the pod's proxy.istio.io/config annotation,
	// what the injected istio-agent reports to istiod; nil without the annotation.
	proxyConfig *meshconfig.ProxyConfig
}

func (p pod) identity() string { return spiffeID(p.namespace, p.serviceAccount) }

// servicePort is one port of a Service as a pod behind it serves it.
type servicePort struct {
	service     string
	targetPort  int    // the container port: what the pod's inbound listener matches
	appProtocol string // "http", "grpc" or "tcp" (every meshdemo Service port declares one)
}

// mesh is one rendered scenario loaded into Istio's control plane.
type mesh struct {
	t        *testing.T
	flavour  matrix.Flavour
	objs     []object // the rendered scenario, as loaded
	fds      *xds.FakeDiscoveryServer
	pods     []pod
	services map[string]string        // name -> cluster IP
	ports    map[string][]servicePort // pod name -> ports of the Services selecting it
	gateway  pod
	wp       pod // the ambient flavour's waypoint
}

// ingressGateway mirrors what `istioctl install` creates in istio-system: the
// istio-ingressgateway Service (80 -> 8080, 443 -> 8443) and its pod. With the Service present
// istiod translates Gateway port 80 into the pod's listener port 8080, as in a real cluster.
const ingressGateway = `apiVersion: v1
kind: Node
metadata:
  name: kind-worker
---
apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
---
apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
  namespace: istio-system
  labels: {app: istio-ingressgateway, istio: ingressgateway}
spec:
  clusterIP: 10.96.100.1
  selector: {app: istio-ingressgateway, istio: ingressgateway}
  ports:
  - {name: status-port, port: 15021, targetPort: 15021, protocol: TCP}
  - {name: http2, port: 80, targetPort: 8080, protocol: TCP}
  - {name: https, port: 443, targetPort: 8443, protocol: TCP}
---
apiVersion: v1
kind: Pod
metadata:
  name: istio-ingressgateway-0
  namespace: istio-system
  labels: {app: istio-ingressgateway, istio: ingressgateway}
spec:
  serviceAccountName: istio-ingressgateway-service-account
  nodeName: kind-worker
  containers:
  - name: istio-proxy
    image: istio/proxyv2
    ports:
    - {containerPort: 8080, protocol: TCP}
    - {containerPort: 8443, protocol: TCP}
    - {containerPort: 15021, protocol: TCP}
status:
  phase: Running
  podIP: 10.244.1.2
  podIPs: [{ip: 10.244.1.2}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: istio-ingressgateway-0
  namespace: istio-system
  labels: {kubernetes.io/service-name: istio-ingressgateway}
addressType: IPv4
endpoints:
- addresses: [10.244.1.2]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: istio-ingressgateway-0, namespace: istio-system}
ports:
- {name: status-port, port: 15021, protocol: TCP}
- {name: http2, port: 8080, protocol: TCP}
- {name: https, port: 8443, protocol: TCP}
`

var gatewayPod = pod{
	name: "istio-ingressgateway-0", namespace: gatewayNS, ip: "10.244.1.2",
	serviceAccount: "istio-ingressgateway-service-account",
	labels:         map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"},
}

// newMesh loads rendered objects into a FakeDiscoveryServer. Istio kinds go to the config
// store; Services, Namespaces, ServiceAccounts and Gateway API objects go to the fake API server
// (istiod's Gateway API controller reads the latter from informers), together with what the
// cluster itself would add: a cluster IP per Service, one running pod per Deployment, an
// EndpointSlice per Service, and the flavour's ingress gateway (and, in ambient mode, the
// waypoint) as istioctl or istiod's deployment controller would create them.
func newMesh(t *testing.T, f matrix.Flavour, objs []object) *mesh {
	t.Helper()
	fs := spec(t, f)
	m, kube, istio, err := buildWorld(f, objs)
	if err != nil {
		t.Fatal(err)
	}
	m.t = t
	m.objs = objs
	m.wp = waypointPod
	// istiod's deployment controller copies a Gateway's infrastructure annotations onto the
	// pods it runs for it (kube-gateway and waypoint templates), proxy.istio.io/config included.
	for _, gw := range findObjects(objs, "Gateway", func(o object) bool { return o.isGatewayAPI() }) {
		ann := str(gw, "spec", "infrastructure", "annotations", proxyConfigAnnotation)
		if ann == "" {
			continue
		}
		pc, err := istiomesh.MergeProxyConfig(ann, istiomesh.DefaultMeshConfig().GetDefaultConfig())
		if err != nil {
			t.Fatalf("Gateway %s: %s: %v", gw.name(), proxyConfigAnnotation, err)
		}
		switch gw.name() {
		case "waypoint":
			m.wp.proxyConfig = pc
		case want.gatewayName:
			m.gateway.proxyConfig = pc
		}
	}
	kube = fs.ingress().objects + "---\n" + kube
	if fs.controllerObjects != "" {
		kube = fs.controllerObjects + "---\n" + kube
	}
	m.fds = xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           istio,
		KubernetesObjectString: kube,
		KubeClientModifier:     withBundleVersion,
	})
	return m
}

func buildWorld(f matrix.Flavour, objs []object) (*mesh, string, string, error) {
	m := &mesh{flavour: f, services: map[string]string{}, ports: map[string][]servicePort{}, gateway: flavours[f].ingress().pod}
	var istioObjs, kubeObjs []object
	var deployments, services []object
	ambientNamespaces := map[string]bool{}
	for _, o := range objs {
		switch {
		case o.isIstio():
			istioObjs = append(istioObjs, o)
			if slices.Contains(flavours[f].kubeIstioKinds, o.kind()) {
				// The ambient index (ztunnel's policies) reads these from the API server too.
				kubeObjs = append(kubeObjs, o)
			}
		case o.isGatewayAPI():
			if o.kind() == "Gateway" && str(o, "spec", "gatewayClassName") == "istio-waypoint" {
				// The address istiod's Gateway controller writes into the status once the
				// waypoint's Service exists; the ambient index finds the waypoint through it.
				o = object(mergeMap(o, map[string]any{"status": map[string]any{"addresses": []any{
					map[string]any{"type": "Hostname", "value": fqdn(o.name())},
				}}}))
			}
			kubeObjs = append(kubeObjs, o)
		case o.kind() == "Deployment", o.kind() == "StatefulSet":
			// A StatefulSet's pod is <name>-0, the same name scheme as below.
			deployments = append(deployments, o)
		case o.kind() == "Service":
			services = append(services, o)
		case o.kind() == "Namespace":
			kubeObjs = append(kubeObjs, o)
			if str(o, "metadata", "labels", "istio.io/dataplane-mode") == "ambient" {
				ambientNamespaces[o.name()] = true
			}
		case o.kind() == "ServiceAccount", o.kind() == "ConfigMap":
			kubeObjs = append(kubeObjs, o)
		}
	}
	if len(deployments) == 0 || len(services) == 0 {
		return nil, "", "", fmt.Errorf("render has %d Deployments and %d Services; want both", len(deployments), len(services))
	}
	sort.Slice(deployments, func(i, j int) bool { return deployments[i].name() < deployments[j].name() })
	sort.Slice(services, func(i, j int) bool { return services[i].name() < services[j].name() })

	templates := map[string]map[string]any{} // pod name -> pod spec, to resolve named target ports
	ipSeq := 10
	for _, d := range deployments {
		ns := d.namespace()
		if ns == "" {
			ns = "default"
		}
		replicas := 1
		if r := field(d, "spec", "replicas"); r != nil {
			replicas = intOf(r)
		}
		sa := str(d, "spec", "template", "spec", "serviceAccountName")
		if sa == "" {
			sa = "default"
		}
		spec := mapAt(d, "spec", "template", "spec")
		var pc *meshconfig.ProxyConfig
		if ann := str(d, "spec", "template", "metadata", "annotations", proxyConfigAnnotation); ann != "" {
			var err error
			if pc, err = istiomesh.MergeProxyConfig(ann, istiomesh.DefaultMeshConfig().GetDefaultConfig()); err != nil {
				return nil, "", "", fmt.Errorf("Deployment %s: %s: %w", d.name(), proxyConfigAnnotation, err)
			}
		}
		for r := range replicas {
			p := pod{
				name:           fmt.Sprintf("%s-%d", d.name(), r),
				namespace:      ns,
				ip:             fmt.Sprintf("10.244.0.%d", ipSeq),
				serviceAccount: sa,
				labels:         stringMap(d, "spec", "template", "metadata", "labels"),
				proxyConfig:    pc,
			}
			ipSeq++
			templates[p.name] = spec
			m.pods = append(m.pods, p)
			annotations := mergeMap(mapAt(d, "spec", "template", "metadata", "annotations"), nil)
			if ambientNamespaces[ns] {
				// istio-cni's mark on a pod whose traffic it redirected to ztunnel, for every pod
				// started in a namespace labelled istio.io/dataplane-mode: ambient.
				annotations["ambient.istio.io/redirection"] = "enabled"
			}
			kubeObjs = append(kubeObjs, object{
				"apiVersion": "v1",
				"kind":       "Pod",
				"metadata": map[string]any{
					"name": p.name, "namespace": p.namespace, "labels": anyMap(p.labels),
					"annotations": annotations,
				},
				"spec": mergeMap(spec, map[string]any{"nodeName": "kind-worker", "serviceAccountName": p.serviceAccount}),
				"status": map[string]any{
					"phase": "Running", "podIP": p.ip, "podIPs": []any{map[string]any{"ip": p.ip}},
					"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
				},
			})
		}
	}
	for i, s := range services {
		ip := fmt.Sprintf("10.96.0.%d", 10+i)
		m.services[s.name()] = ip
		svc := object(mergeMap(s, nil))
		svc["spec"] = mergeMap(s.spec(), map[string]any{"clusterIP": ip})
		kubeObjs = append(kubeObjs, svc)
		if eps := endpointSlice(s, m.pods, templates); eps != nil {
			kubeObjs = append(kubeObjs, eps)
		}
		selector := stringMap(s, "spec", "selector")
		for _, p := range m.pods {
			if len(selector) == 0 || p.namespace != s.namespace() || !labelsMatch(selector, p.labels) {
				continue
			}
			for _, raw := range listAt(s, "spec", "ports") {
				sp, _ := raw.(map[string]any)
				target := intOf(sp["port"])
				switch tp := sp["targetPort"].(type) {
				case string:
					target = containerPort(templates[p.name], tp)
				case nil:
				default:
					target = intOf(tp)
				}
				ap, _ := sp["appProtocol"].(string)
				m.ports[p.name] = append(m.ports[p.name], servicePort{service: s.name(), targetPort: target, appProtocol: ap})
			}
		}
	}
	kube, err := toYAML(kubeObjs)
	if err != nil {
		return nil, "", "", err
	}
	istio, err := toYAML(istioObjs)
	if err != nil {
		return nil, "", "", err
	}
	return m, kube, istio, nil
}

// endpointSlice is what the EndpointSlice controller would write for a Service: the ready pods
// its selector picks, with target ports resolved against the pods' container ports.
func endpointSlice(svc object, pods []pod, templates map[string]map[string]any) object {
	selector := stringMap(svc, "spec", "selector")
	if len(selector) == 0 {
		return nil
	}
	var endpoints []any
	var target map[string]any
	for _, p := range pods {
		if p.namespace != svc.namespace() || !labelsMatch(selector, p.labels) {
			continue
		}
		endpoints = append(endpoints, map[string]any{
			"addresses":  []any{p.ip},
			"conditions": map[string]any{"ready": true},
			"targetRef":  map[string]any{"kind": "Pod", "name": p.name, "namespace": p.namespace},
		})
		target = templates[p.name]
	}
	var ports []any
	for _, raw := range listAt(svc, "spec", "ports") {
		sp, _ := raw.(map[string]any)
		port := intOf(sp["port"])
		switch tp := sp["targetPort"].(type) {
		case string:
			port = containerPort(target, tp)
		case nil:
		default:
			port = intOf(tp)
		}
		proto, _ := sp["protocol"].(string)
		if proto == "" {
			proto = "TCP"
		}
		ports = append(ports, map[string]any{"name": sp["name"], "port": port, "protocol": proto})
	}
	return object{
		"apiVersion":  "discovery.k8s.io/v1",
		"kind":        "EndpointSlice",
		"addressType": "IPv4",
		"metadata": map[string]any{
			"name": svc.name() + "-slice", "namespace": svc.namespace(),
			"labels": map[string]any{"kubernetes.io/service-name": svc.name()},
		},
		"endpoints": endpoints,
		"ports":     ports,
	}
}

func containerPort(spec map[string]any, name string) int {
	for _, c := range listAt(spec, "containers") {
		cm, _ := c.(map[string]any)
		for _, p := range listAt(cm, "ports") {
			pm, _ := p.(map[string]any)
			if pm["name"] == name {
				return intOf(pm["containerPort"])
			}
		}
	}
	return 0
}

func intOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func anyMap(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// mergeMap returns a shallow copy of base with extra's keys set.
func mergeMap(base, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// in returns the mesh bound to a subtest, so that Istio's helpers fail the test that runs them.
func (m *mesh) in(t *testing.T) *mesh {
	c := *m
	c.t = t
	return &c
}

// workloads returns the pods of app, one per version (replicas share the sidecar configuration).
func (m *mesh) workloads(app string) ([]pod, error) {
	seen := map[string]bool{}
	var out []pod
	for _, p := range m.pods {
		if p.labels["app"] == app && !seen[p.labels["version"]] {
			seen[p.labels["version"]] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no pod with label app=%s (pods: %s)", app, m.podNames())
	}
	return out, nil
}

// replicas counts the pods of app at version.
func (m *mesh) replicas(app, version string) int {
	n := 0
	for _, p := range m.pods {
		if p.labels["app"] == app && p.labels["version"] == version {
			n++
		}
	}
	return n
}

func (m *mesh) podNames() string {
	var have []string
	for _, p := range m.pods {
		have = append(have, fmt.Sprintf("%s(app=%s,version=%s)", p.name, p.labels["app"], p.labels["version"]))
	}
	return strings.Join(have, " ")
}

const sidecarType = model.SidecarProxy

// ingress builds the Envoy configuration istiod pushes to the ingress gateway.
func (m *mesh) ingress() *simulation.Simulation {
	return m.simulate(m.gateway, model.Router)
}

// simulate builds the Envoy configuration istiod pushes to the proxy of pod p.
func (m *mesh) simulate(p pod, typ model.NodeType) *simulation.Simulation {
	return simulation.NewSimulation(m.t, m.fds, m.proxy(p, typ))
}

// proxy is the xDS client istiod sees for pod p: its identity, labels and IP.
func (m *mesh) proxy(p pod, typ model.NodeType) *model.Proxy {
	return m.fds.SetupProxy(&model.Proxy{
		Type:            typ,
		ID:              p.name + "." + p.namespace,
		IPAddresses:     []string{p.ip},
		ConfigNamespace: p.namespace,
		Labels:          p.labels,
		Metadata: &model.NodeMetadata{
			Namespace:      p.namespace,
			Labels:         p.labels,
			ServiceAccount: p.serviceAccount,
			IstioVersion:   istioVersion,
			ClusterID:      "Kubernetes",
			ProxyConfig:    (*model.NodeMetaProxyConfig)(p.proxyConfig),
		},
	})
}

const proxyConfigAnnotation = "proxy.istio.io/config"

// servesHTTP reports whether a Service in front of p has its HTTP port (the meshdemo workloads).
func (m *mesh) servesHTTP(p pod) bool {
	for _, sp := range m.ports[p.name] {
		if sp.appProtocol == "http" && sp.targetPort == want.appPort {
			return true
		}
	}
	return false
}
