package pilot

import (
	"time"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// want is every value the tests expect, in one table. It mirrors istio/sidecar/components/README.md (the
// manifests' own documentation); when a scenario's values change there, change them here. The
// tests never take expected values from the manifests themselves: a wrong manifest must fail.
var want = expectations{
	gatewayName:    "meshdemo-gateway",
	gatewayHost:    "client.meshdemo",
	gatewayPort:    80,
	gatewayTimeout: 5 * time.Second,
	ingress: map[matrix.Flavour]ingressRoute{
		// Service istio-ingressgateway port 80 -> pod port 8080; the VirtualService picks v1.
		matrix.Sidecar: {listenerPort: 8080, clientVersion: "v1"},
		// The Gateway's generated Service keeps port 80 on the pod; the HTTPRoute's backend is
		// the client Service.
		matrix.GatewayAPI: {listenerPort: 80},
		matrix.Ambient:    {listenerPort: 80},
	},
	peerAuthName: "default",
	appPort:      8080,

	headerRouting: []headerRoute{
		{hop{"client", "server1"}, "end-user", "jason"},
		{hop{"client", "user-service"}, "end-user", "jason"},
		{hop{"server1", "server2"}, "canary_id", "v2"},
	},
	weightedSplit: split{hop{"client", "server1"}, map[string]uint32{"v1": 80, "v2": 20}},
	routeTimeout: timeoutAndDelay{
		timeoutHop: hop{"client", "server1"}, timeout: time.Second,
		delay: delayFault{hop{"server1", "server2"}, 2 * time.Second, 100},
	},
	faultAbort: []abortFault{
		// A partial abort must not be retried by the hops above it, or the rate would shrink.
		{hop{"server1", "server2"}, 400, 50, []hop{{ingressCaller, "client"}, {"client", "server1"}}},
		{hop{"client", "user-service"}, 503, 100, nil},
	},
	faultDelay: delayFault{hop{"server1", "server2"}, 3 * time.Second, 100},
	// server1 -> server2 for the chain; client -> user-service so that a POST is retried too
	// (user-service's Idempotency-Key keeps a retried create to one user).
	// The Gateway API flavours: HTTPRoute retry {attempts: 3, codes: [500, 502, 503, 504]} with
	// timeouts.backendRequest 1s; istiod keeps its default retry conditions and adds the codes.
	retries: []retryPolicy{
		{hop: hop{"server1", "server2"}, attempts: 3, perTryTimeout: time.Second,
			virtualService: retryOn{on: []string{"5xx", "connect-failure", "refused-stream", "reset"}},
			gatewayAPI:     gatewayRetryOn, envoy: retryBehaviour},
		{hop: hop{"client", "user-service"}, attempts: 3, perTryTimeout: time.Second,
			virtualService: retryOn{on: []string{"5xx", "connect-failure", "refused-stream", "reset"}},
			gatewayAPI:     gatewayRetryOn, envoy: retryBehaviour},
	},
	outlier: trafficPolicy{
		// The Gateway API flavours: one DestinationRule per backend host (server2-v1, server2-v2).
		hop: hop{"server1", "server2"}, subsets: []string{"", "v1", "v2"}, gatewayVersions: []string{"v1", "v2"},
		maxConnections: 10, connectTimeout: time.Second,
		http1MaxPending: 5, http2MaxRequests: 20, maxRetries: 3,
		consecutive5xx: 3, interval: 5 * time.Second, baseEjectionTime: 30 * time.Second, maxEjectionPercent: 50,
		v1Replicas: 2,
	},
	mirror: mirrorPolicy{hop{"server1", "server2"}, "v1", "v2", 100},
	authzAllowed: map[string][]string{
		"client":       {ingressCaller},
		"server1":      {"client"},
		"server2":      {"server1"},
		"user-service": {"client"},
	},
	// ambient (authz scenario): ztunnel lets each pod be reached only by the proxy that sends to
	// it directly, the ingress gateway for client (a gateway sends to the pod, not through the
	// waypoint) and the waypoint for everything behind it; the waypoint allows authzAllowed by the
	// original caller's identity (the ingress gateway's calls never reach it) and the database
	// to its callers.
	ztunnelAllowed: map[string][]string{
		"client":       {ingressCaller},
		"server1":      {waypointCaller},
		"server2":      {waypointCaller},
		"user-service": {waypointCaller},
		"postgres":     {waypointCaller},
	},
	hardening: hardening{header: "x-meshdemo-fault", inMesh: hop{"server1", "client"}},
	// deploy/components/postgres, in every render with the canary: a TCP port, reached by
	// user-service alone (authz scenario), under the namespace's STRICT mTLS (base).
	database: tcpService{name: "postgres", port: 5432, callers: []string{"user-service"}},

	// istio/sidecar/base with deploy/base: the gRPC hops (GET /client/grpc) on the Services' port grpc.
	grpcPort: 50051,
	grpcHops: []hop{{"client", "server1"}, {"server1", "server2"}},
	grpcBalancing: balancing{
		hop: hop{"client", "server1"}, lbPolicy: "LEAST_REQUEST", subsets: []string{"", "v1", "v2"}, v1Replicas: 3,
		// The Gateway API flavours: the DestinationRule is on the host the GRPCRoute targets, and
		// a GRPCRoute splits server1 -> server2 over gRPC half and half by version.
		gatewayVersions:  []string{"v1"},
		gatewayGRPCSplit: split{hop{"server1", "server2"}, map[string]uint32{"v1": 50, "v2": 50}},
	},
	// The gRPC chain (GET /client/grpc) under the routing scenarios, on the Services' port grpc:
	// the sidecar flavour's VirtualServices have no port match and apply to it as written; the
	// Gateway API flavours' GRPCRoutes server1-grpc and server2-grpc carry the same rules (the
	// hops of grpcHops; user-service serves HTTP only).
	grpcRoutes: grpcRoutes{
		headerRouting: []headerRoute{
			{hop{"client", "server1"}, "end-user", "jason"},
			{hop{"server1", "server2"}, "canary_id", "v2"},
		},
		weightedSplit: split{hop{"client", "server1"}, map[string]uint32{"v1": 80, "v2": 20}},
		mirror:        mirrorPolicy{hop{"server1", "server2"}, "v1", "v2", 100},
	},
	rateLimit: rateLimit{
		service: "server2", ports: []int{8080, 50051},
		maxTokens: 10, tokensPerFill: 10, fillInterval: time.Second, pct: 100,
		status: 429, header: "x-local-rate-limit", headerValue: "true", grpcResourceExhausted: true,
	},
}

// ingressCaller names the ingress gateway among callers in authzAllowed; waypointCaller names
// the ambient flavour's waypoint.
const (
	ingressCaller  = "ingressgateway"
	waypointCaller = "waypoint"
)

type expectations struct {
	// istio/sidecar/base
	gatewayName    string
	gatewayHost    string
	gatewayPort    int
	gatewayTimeout time.Duration
	ingress        map[matrix.Flavour]ingressRoute
	peerAuthName   string
	appPort        int

	headerRouting []headerRoute
	weightedSplit split
	routeTimeout  timeoutAndDelay
	faultAbort    []abortFault
	faultDelay    delayFault
	retries       []retryPolicy
	outlier       trafficPolicy
	mirror        mirrorPolicy
	authzAllowed  map[string][]string // callee app -> allowed callers; everyone else is denied
	// ztunnelAllowed: callee app -> the direct peers ztunnel lets connect (ambient authz)
	ztunnelAllowed map[string][]string
	hardening      hardening
	database       tcpService
	grpcPort       int
	grpcHops       []hop // called over gRPC; each keeps its port and is routed per request
	grpcBalancing  balancing
	grpcRoutes     grpcRoutes
	rateLimit      rateLimit
}

// grpcRoutes: what header-routing, weighted-split and mirroring do to the gRPC hops.
type grpcRoutes struct {
	headerRouting []headerRoute
	weightedSplit split
	mirror        mirrorPolicy
}

// ingressRoute is the ingress gateway's side of the documented Host in one flavour.
type ingressRoute struct {
	listenerPort  int    // the gateway pod's listener for the Gateway's port 80
	clientVersion string // the client version the route names ("" = the client Service)
}

// tcpService is a Service whose port is plain TCP (appProtocol tcp): its callers reach it
// through a TCP proxy, and authorization happens on the connection (network RBAC filter).
type tcpService struct {
	name    string
	port    int
	callers []string // the only apps allowed to connect in the authz scenario
}

// hop is one call of the graph: the sidecar of from routes the call to service to.
type hop struct{ from, to string }

// headerRoute: on hop, header=value selects subset v2; anything else stays on v1.
type headerRoute struct {
	hop           hop
	header, value string
}

// headerCase is one request of a header-routing check: these headers (or gRPC metadata)
// must reach this version.
type headerCase struct {
	headers map[string]string
	version string
}

// cases: header=value reaches v2; no header, or another value, stays on v1.
func (hr headerRoute) cases() []headerCase {
	return []headerCase{
		{map[string]string{hr.header: hr.value}, "v2"},
		{nil, "v1"},
		{map[string]string{hr.header: hr.value + "-other"}, "v1"},
	}
}

type split struct {
	hop     hop
	weights map[string]uint32 // subset -> weight
}

type timeoutAndDelay struct {
	timeoutHop hop
	timeout    time.Duration
	delay      delayFault
}

type delayFault struct {
	hop   hop
	delay time.Duration
	pct   float64
}

type abortFault struct {
	hop    hop
	status uint32
	pct    float64
	above  []hop // the hops the aborted status travels back through; none may retry it
}

type retryPolicy struct {
	hop            hop
	attempts       uint32
	perTryTimeout  time.Duration
	virtualService retryOn // the sidecar flavour's VirtualService retries
	gatewayAPI     retryOn // what istiod makes of the HTTPRoute retry
	envoy          map[matrix.Flavour]retried
}

// retryOn is Envoy's retry_on list and retriable status codes.
type retryOn struct {
	on    []string
	codes []uint32 // sorted
}

var gatewayRetryOn = retryOn{
	on:    []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"},
	codes: []uint32{500, 502, 503, 504},
}

// retryBehaviour is what Envoy does with each flavour's retry policy (envoy_retry_test.go).
// sidecar: retry_on has 5xx and reset, so a try cut by the 1 s per-try timeout is retried (four
// slow tries: 504 after about 4 s) and so is any 5xx. gateway-api and ambient: the HTTPRoute
// retry can only list status codes, and istiod adds connect-failure, refused-stream, unavailable
// and cancelled, none of which retries a timed-out try: a slow try ends the call with 504 after
// about 1 s; 501 is not in the codes.
var retryBehaviour = map[matrix.Flavour]retried{
	matrix.Sidecar:    {timedOutTry: true, statuses: []uint32{500, 501, 503, 504}, notStatuses: []uint32{400, 429}},
	matrix.GatewayAPI: {timedOutTry: false, statuses: []uint32{500, 502, 503, 504}, notStatuses: []uint32{400, 429, 501}},
	matrix.Ambient:    {timedOutTry: false, statuses: []uint32{500, 502, 503, 504}, notStatuses: []uint32{400, 429, 501}},
}

// retried: whether Envoy retries a try cut by the per-try timeout, and the upstream statuses it
// retries and does not.
type retried struct {
	timedOutTry           bool
	statuses, notStatuses []uint32
}

func (rp retryPolicy) byAPI(f matrix.Flavour) retryOn {
	if f.GatewayAPIRoutes() {
		return rp.gatewayAPI
	}
	return rp.virtualService
}

type trafficPolicy struct {
	hop                                           hop
	subsets                                       []string // "" is the service's default cluster
	gatewayVersions                               []string // the Gateway API flavours' backend hosts
	maxConnections                                uint32
	connectTimeout                                time.Duration
	http1MaxPending, http2MaxRequests, maxRetries uint32
	consecutive5xx                                uint32
	interval, baseEjectionTime                    time.Duration
	maxEjectionPercent                            uint32
	v1Replicas                                    int
}

type mirrorPolicy struct {
	hop                       hop
	routeSubset, mirrorSubset string
	pct                       float64
}

type hardening struct {
	header string // removed from requests entering through the gateway
	inMesh hop    // an in-mesh call to the client that must keep it
}

// balancing: the callee's clusters balance each request with lbPolicy (an Envoy
// Cluster_LbPolicy name), over v1Replicas endpoints of subset v1.
type balancing struct {
	hop              hop
	lbPolicy         string
	subsets          []string // "" is the service's default cluster
	v1Replicas       int
	gatewayVersions  []string // the Gateway API flavours' hosts with the policy
	gatewayGRPCSplit split    // the Gateway API flavours' GRPCRoute split (version -> weight)
}

// rateLimit: Envoy's local rate limit in the inbound HTTP filter chains of service on ports.
type rateLimit struct {
	service                  string
	ports                    []int
	maxTokens, tokensPerFill uint32
	fillInterval             time.Duration
	pct                      uint32 // filter enabled and enforced for this share of requests
	status                   uint32
	header, headerValue      string // added to the limited responses
	grpcResourceExhausted    bool   // limited gRPC calls end RESOURCE_EXHAUSTED, not UNAVAILABLE
}
