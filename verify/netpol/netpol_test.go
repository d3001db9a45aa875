package netpol

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	"github.com/meshdemo/meshdemo/verify/manifests"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// port is a destination port and its protocol.
type port struct {
	num   int
	proto corev1.Protocol
}

func (p port) String() string { return fmt.Sprintf("%d/%s", p.num, p.proto) }

func tcp(nums ...int) []port {
	var out []port
	for _, n := range nums {
		out = append(out, port{n, corev1.ProtocolTCP})
	}
	return out
}

var dns = []port{{53, corev1.ProtocolUDP}, {53, corev1.ProtocolTCP}}

// probed are the ports every pair is asked about: every port the graph uses, and the ones a
// mistake would open (Envoy's admin and stats, the webhook, plain HTTP).
var probed = append(slices.Clone(dns), tcp(80, 4317, 4318, 5432, 8080, 9090, 15008, 15012, 15017, 15020, 15021, 15090, 50051)...)

// peer is one pod (or outside address) of a cluster running meshdemo, with the role the
// expected graph names it by.
type peer struct {
	role, name, namespace string
	labels                map[string]string
	ip                    string // set for addresses outside the cluster's pods
}

func (p peer) traffic() *matcher.TrafficPeer {
	if p.namespace == "" {
		return &matcher.TrafficPeer{IP: p.ip}
	}
	return &matcher.TrafficPeer{IP: p.ip, Internal: &matcher.InternalPeer{
		PodLabels: p.labels, Namespace: p.namespace,
		// The label the API server puts on every namespace.
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": p.namespace},
	}}
}

// The pods a cluster holds besides what meshdemo renders, labelled as their installers label
// them in the pinned Istio (manifests/charts, samples/addons) and in kind.
var (
	istiod     = peer{role: "istiod", name: "istiod", namespace: "istio-system", labels: map[string]string{"app": "istiod", "istio": "pilot"}}
	kubeDNS    = peer{role: "dns", name: "coredns", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
	prometheus = peer{role: "prometheus", name: "prometheus", namespace: "istio-system", labels: map[string]string{
		"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/component": "server"}}
	jaeger = peer{role: "jaeger", name: "jaeger", namespace: "istio-system", labels: map[string]string{"app": "jaeger"}}
	// The classic ingress gateway of the sidecar flavour (istioctl install).
	classicGateway = peer{role: "gateway", name: "istio-ingressgateway", namespace: "istio-system", labels: map[string]string{
		"app": "istio-ingressgateway", "istio": "ingressgateway"}}
	// What istiod deploys for the Gateway API Gateway meshdemo-gateway (kube-gateway.yaml).
	apiGateway = peer{role: "gateway", name: "meshdemo-gateway-istio", namespace: "istio-ingress", labels: map[string]string{
		"gateway.networking.k8s.io/gateway-name": "meshdemo-gateway", "gateway.networking.k8s.io/gateway-class-name": "istio"}}
	// What istiod deploys for the Gateway `waypoint` (istio-discovery/files/waypoint.yaml).
	waypoint = peer{role: "waypoint", name: "waypoint", namespace: manifests.Namespace, labels: map[string]string{
		"gateway.networking.k8s.io/gateway-name": "waypoint", "gateway.networking.k8s.io/gateway-class-name": "istio-waypoint",
		"gateway.istio.io/managed": "istio.io-mesh-controller", "istio.io/dataplane-mode": "none", "sidecar.istio.io/inject": "false"}}
	// Pods that must reach nothing: a pod in meshdemo outside the graph, look-alikes of the
	// client and of the waypoint in another namespace.
	stray           = peer{role: "stray", name: "debug", namespace: manifests.Namespace, labels: map[string]string{"app": "debug"}}
	outsideClient   = peer{role: "outside", name: "elsewhere/client", namespace: "elsewhere", labels: map[string]string{"app": "client", "version": "v1"}}
	outsideWaypoint = peer{role: "outside", name: "elsewhere/waypoint", namespace: "elsewhere", labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint"}}
	// The kubelet's probes of ambient pods, as istio-cni SNATs them (cni/pkg/nodeagent
	// DefaultHostProbeSNATIP), and any other address outside the pod network.
	probeSource = peer{role: "kubelet-probe", name: "169.254.7.127", ip: "169.254.7.127"}
	external    = peer{role: "external", name: "192.0.2.10", ip: "192.0.2.10"}
)

type edge struct{ from, to string }

// graph is the expected allow list: for each (from, to) role pair, the ports a connection may
// open. Everything else is denied.
type graph map[edge][]port

func (g graph) allow(from, to string, ports ...port) {
	g[edge{from, to}] = append(g[edge{from, to}], ports...)
}

// expected is the call graph of the issue for a flavour's data plane, written out here:
// client -> server1 -> server2, client -> user-service -> postgres, ingress gateway -> client,
// DNS, istiod, the observability addons.
func expected(f matrix.Flavour) graph {
	g := graph{}
	meshdemo := []string{"client", "server1", "server2", "user-service", "postgres", "stray"}
	if f == matrix.Ambient {
		meshdemo = append(meshdemo, "waypoint")
	}
	for _, r := range meshdemo {
		g.allow(r, "dns", dns...)
		g.allow(r, "jaeger", tcp(4317, 4318)...)
		g.allow("prometheus", r, tcp(9090, 15020)...)
	}
	if f != matrix.Ambient {
		// A sidecar in every pod: the apps' own ports, and istiod for every sidecar.
		for _, r := range meshdemo {
			g.allow(r, "istiod", tcp(15012)...)
		}
		g.allow("gateway", "client", tcp(8080)...)
		g.allow("client", "server1", tcp(8080, 50051)...)
		g.allow("client", "user-service", tcp(8080)...)
		g.allow("server1", "server2", tcp(8080, 50051)...)
		g.allow("user-service", "postgres", tcp(5432)...)
		return g
	}
	// Ambient: HBONE (15008) through the waypoint, the ingress gateway straight to client.
	g.allow("gateway", "client", tcp(15008)...)
	for _, caller := range []string{"client", "server1", "user-service"} {
		g.allow(caller, "waypoint", tcp(15008)...)
	}
	for _, callee := range []string{"server1", "server2", "user-service", "postgres"} {
		g.allow("waypoint", callee, tcp(15008)...)
	}
	g.allow("waypoint", "istiod", tcp(15012)...)
	for _, app := range []string{"client", "server1", "server2", "user-service"} {
		g.allow("kubelet-probe", app, tcp(8080)...)
	}
	return g
}

// peers are the pods of a render (one per Deployment or StatefulSet, role = its app label) and
// those the cluster adds for the flavour.
func peers(f matrix.Flavour, objs []manifests.Object) []peer {
	var out []peer
	for _, o := range objs {
		var tpl *corev1.PodTemplateSpec
		switch w := o.Typed.(type) {
		case *appsv1.Deployment:
			tpl = &w.Spec.Template
		case *appsv1.StatefulSet:
			tpl = &w.Spec.Template
		default:
			continue
		}
		out = append(out, peer{role: tpl.Labels["app"], name: o.Meta.Name, namespace: o.Meta.Namespace, labels: tpl.Labels})
	}
	gateway := apiGateway
	if f == matrix.Sidecar {
		gateway = classicGateway
	}
	out = append(out, gateway, istiod, kubeDNS, prometheus, jaeger, stray, outsideClient, outsideWaypoint, probeSource, external)
	if f == matrix.Ambient {
		out = append(out, waypoint)
	}
	for i := range out {
		if out[i].ip == "" {
			out[i].ip = fmt.Sprintf("10.244.0.%d", 10+i)
		}
	}
	return out
}

// check asks the engine about every pair of peers of which at least one is in meshdemo (the
// policies govern only those), on every probed port, and returns each disagreement with the
// expected graph.
func check(f matrix.Flavour, objs []manifests.Object) []string {
	var policies []*networkingv1.NetworkPolicy
	for _, o := range objs {
		if np, ok := o.Typed.(*networkingv1.NetworkPolicy); ok {
			policies = append(policies, np)
		}
	}
	engine := matcher.BuildNetworkPolicies(false, policies)
	want := expected(f)
	ps := peers(f, objs)
	var problems []string
	for _, src := range ps {
		for _, dst := range ps {
			if src.name == dst.name || (src.namespace != manifests.Namespace && dst.namespace != manifests.Namespace) {
				continue
			}
			allowed := want[edge{src.role, dst.role}]
			for _, p := range probed {
				got := engine.IsTrafficAllowed(&matcher.Traffic{
					Source: src.traffic(), Destination: dst.traffic(), ResolvedPort: p.num, Protocol: p.proto,
				}).IsAllowed()
				if w := slices.Contains(allowed, p); got != w {
					verb := "denied, want allowed"
					if got {
						verb = "allowed, want denied"
					}
					problems = append(problems, fmt.Sprintf("%s (%s) -> %s (%s) %s: %s", src.name, src.role, dst.name, dst.role, p, verb))
				}
			}
		}
	}
	return problems
}

// repoRoot is the repository root, two levels above this module, and the one copy of its
// deploy/ and istio/ that the tests which only render share (with the renders it keeps).
var (
	repoRoot = sync.OnceValues(func() (string, error) {
		root, err := filepath.Abs("../..")
		if err == nil {
			_, err = os.Stat(filepath.Join(root, "deploy", "base", "kustomization.yaml"))
		}
		return root, err
	})
	shared = sync.OnceValues(func() (*manifests.Tree, error) {
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		return manifests.LoadTree(root)
	})
)

// loadTree is a copy of the repository: the shared one, or a fresh one for a test that edits it.
func loadTree(t testing.TB, fresh bool) *manifests.Tree {
	t.Helper()
	load := shared
	if fresh {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("repository root: %v", err)
		}
		load = func() (*manifests.Tree, error) { return manifests.LoadTree(root) }
	}
	tr, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func renderProfile(t testing.TB, tr *manifests.Tree, profile string) (matrix.Flavour, []manifests.Object) {
	t.Helper()
	f, _, err := matrix.ParseProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tr.Build(matrix.ScenarioDir(profile))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return f, objs
}

// Every deployed render (each preset and scenario of each flavour) allows exactly the call graph.
func TestEveryRenderAllowsExactlyTheCallGraph(t *testing.T) {
	t.Parallel()
	for _, p := range matrix.Profiles() {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			f, objs := renderProfile(t, loadTree(t, false), p)
			if problems := check(f, objs); len(problems) > 0 {
				t.Errorf("%d disagreements with the call graph:\n  %s", len(problems), strings.Join(problems, "\n  "))
			}
		})
	}
}

type edit struct{ file, old, new string }

// Each broken variant opens something the graph does not have or closes a call it has; the
// check must report it (the want text is one line of its report).
func TestBrokenPoliciesAreCaught(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		edits   []edit
		profile string
		want    string
	}{
		{"client-reaches-server2-directly", []edit{
			{"istio/networkpolicy/sidecars/callgraph.yaml", "  egress:\n    - to:\n        - podSelector:\n            matchLabels:\n              app: server1\n",
				"  egress:\n    - to:\n        - podSelector:\n            matchLabels:\n              app: server2\n    - to:\n        - podSelector:\n            matchLabels:\n              app: server1\n"},
			{"istio/networkpolicy/sidecars/callgraph.yaml", "  policyTypes: [Ingress]\n  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              app: server1\n",
				"  policyTypes: [Ingress]\n  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              app: client\n    - from:\n        - podSelector:\n            matchLabels:\n              app: server1\n"},
		}, "canary", "client-v1 (client) -> server2-v1 (server2) 8080/TCP: allowed, want denied"},
		{"server1-grpc-to-server2-blocked", []edit{
			{"istio/networkpolicy/sidecars/callgraph.yaml", "              app: server2\n      ports:\n        - protocol: TCP\n          port: 8080\n        - protocol: TCP\n          port: 50051\n",
				"              app: server2\n      ports:\n        - protocol: TCP\n          port: 8080\n"},
		}, "gateway-api-grpc-balancing", "server1-v1 (server1) -> server2-v1 (server2) 50051/TCP: denied, want allowed"},
		{"any-istio-system-pod-reaches-client", []edit{
			{"istio/sidecar/base/networkpolicy.yaml", "          podSelector:\n            matchLabels:\n              istio: ingressgateway\n", ""},
		}, "default", "istiod (istiod) -> client-v1 (client) 8080/TCP: allowed, want denied"},
		{"scrape-from-any-addon", []edit{
			{"istio/mesh/networkpolicy.yaml", "          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n", ""},
		}, "ambient-default", "istiod (istiod) -> client-v1 (client) 9090/TCP: allowed, want denied"},
		{"dns-in-the-wrong-namespace", []edit{
			{"istio/mesh/networkpolicy.yaml", "              kubernetes.io/metadata.name: kube-system\n", "              kubernetes.io/metadata.name: kube-dns\n"},
		}, "canary", "server2-v1 (server2) -> coredns (dns) 53/UDP: denied, want allowed"},
		{"probes-from-anywhere", []edit{
			{"istio/ambient/base/networkpolicy.yaml", "            cidr: 169.254.7.127/32\n", "            cidr: 0.0.0.0/0\n"},
		}, "ambient-canary", "192.0.2.10 (external) -> server2-v1 (server2) 8080/TCP: allowed, want denied"},
		{"probes-on-every-port", []edit{
			{"istio/ambient/base/networkpolicy.yaml", "            cidr: 169.254.7.127/32\n      ports:\n        - protocol: TCP\n          port: 8080\n", "            cidr: 169.254.7.127/32\n"},
		}, "ambient-default", "169.254.7.127 (kubelet-probe) -> client-v1 (client) 15008/TCP: allowed, want denied"},
		{"waypoint-cannot-reach-server2", []edit{
			{"istio/ambient/base/networkpolicy.yaml", "                values: [server1, server2, user-service, postgres]\n", "                values: [server1, user-service, postgres]\n"},
		}, "ambient-canary", "waypoint (waypoint) -> server2-v1 (server2) 15008/TCP: denied, want allowed"},
		{"waypoint-lookalike-from-elsewhere", []edit{
			{"istio/ambient/base/networkpolicy.yaml", "  name: server2\n  namespace: meshdemo\n  labels:\n    app.kubernetes.io/part-of: meshdemo\nspec:\n  podSelector:\n    matchLabels:\n      app: server2\n  policyTypes: [Ingress]\n  ingress:\n    - from:\n        - podSelector:\n",
				"  name: server2\n  namespace: meshdemo\n  labels:\n    app.kubernetes.io/part-of: meshdemo\nspec:\n  podSelector:\n    matchLabels:\n      app: server2\n  policyTypes: [Ingress]\n  ingress:\n    - from:\n        - namespaceSelector: {}\n          podSelector:\n"},
		}, "ambient-default", "elsewhere/waypoint (outside) -> server2-v1 (server2) 15008/TCP: allowed, want denied"},
		{"postgres-without-user-service", []edit{
			{"deploy/components/postgres/networkpolicy.yaml", "              app: user-service\n", "              app: user-servce\n"},
		}, "retries", "user-service-v2 (user-service) -> postgres (postgres) 5432/TCP: denied, want allowed"},
		{"no-default-deny", []edit{
			{"istio/mesh/networkpolicy.yaml", "  name: default-deny\nspec:\n  podSelector: {}\n", "  name: default-deny\nspec:\n  podSelector:\n    matchLabels:\n      app: nothing\n"},
			{"istio/mesh/networkpolicy.yaml", "  name: dns\nspec:\n  podSelector: {}\n", "  name: dns\nspec:\n  podSelector:\n    matchLabels:\n      app: nothing\n"},
			{"istio/mesh/networkpolicy.yaml", "  name: observability\nspec:\n  podSelector: {}\n", "  name: observability\nspec:\n  podSelector:\n    matchLabels:\n      app: nothing\n"},
			{"istio/networkpolicy/sidecars/callgraph.yaml", "  name: istiod\nspec:\n  podSelector: {}\n", "  name: istiod\nspec:\n  podSelector:\n    matchLabels:\n      app: nothing\n"},
		}, "default", "192.0.2.10 (external) -> debug (stray) 8080/TCP: allowed, want denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := loadTree(t, true)
			for _, e := range tc.edits {
				orig, err := tr.Read(e.file)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Count(orig, []byte(e.old)) != 1 {
					t.Fatalf("%s holds %q %d times, want once: the fixture no longer applies", e.file, e.old, bytes.Count(orig, []byte(e.old)))
				}
				if err := tr.Write(e.file, bytes.Replace(orig, []byte(e.old), []byte(e.new), 1)); err != nil {
					t.Fatal(err)
				}
			}
			f, objs := renderProfile(t, tr, tc.profile)
			problems := check(f, objs)
			if !slices.Contains(problems, tc.want) {
				t.Fatalf("not caught: want %q among\n  %s", tc.want, strings.Join(problems, "\n  "))
			}
			t.Logf("caught (%d disagreements), e.g. %s", len(problems), tc.want)
		})
	}
}
