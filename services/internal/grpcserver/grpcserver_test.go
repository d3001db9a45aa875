package grpcserver_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/grpcserver"
	"github.com/meshdemo/meshdemo/services/internal/grpcwire"
	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/health"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/internal/workload"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// end is a chain end that records the metadata it received.
type end struct {
	chainv1.UnimplementedChainServer
	mu   sync.Mutex
	seen metadata.MD
}

func (e *end) Call(ctx context.Context, _ *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	e.mu.Lock()
	e.seen = md.Copy()
	e.mu.Unlock()
	return &chainv1.CallResponse{FirstName: "Mick", Service: "end"}, nil
}

// relay calls its upstream, as server1 does.
type relay struct {
	chainv1.UnimplementedChainServer
	up chainv1.ChainClient
}

func (r *relay) Call(ctx context.Context, req *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return r.up.Call(ctx, req)
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

type hops struct {
	endKit, relayKit *workload.Kit
	end              *end
	relay            chainv1.ChainClient // a client of the relay hop
	endDirect        chainv1.ChainClient
	endAddr          string
}

// twoHops is relay (as "server1") → end (as "server2"), both on the real kit.
func twoHops(t *testing.T, endFaults faults.Config) *hops {
	e := &end{}
	h := kitHops(t, endFaults, e)
	h.end = e
	return h
}

// kitHops is relay (as "server1") → endSrv (as "server2"), both on the real kit; h.end
// is left nil for the caller.
func kitHops(t testing.TB, endFaults faults.Config, endSrv chainv1.ChainServer) *hops {
	t.Helper()
	h := &hops{}
	h.endKit = kittest.Kit(t, kittest.Common("server2"), endFaults, nil)
	h.endAddr = kittest.GRPC(t, h.endKit, func(s *grpc.Server) { chainv1.RegisterChainServer(s, endSrv) })
	h.relayKit = kittest.Default(t, "server1")
	up, err := grpcworkload.Upstream(h.relayKit, "server2", h.endAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	relayAddr := kittest.GRPC(t, h.relayKit, func(s *grpc.Server) {
		chainv1.RegisterChainServer(s, &relay{up: chainv1.NewChainClient(up.Conn())})
	})
	h.relay = chainv1.NewChainClient(dial(t, relayAddr))
	h.endDirect = chainv1.NewChainClient(dial(t, h.endAddr))
	return h
}

func TestChainPathAndPropagation(t *testing.T) {
	t.Parallel()
	h := twoHops(t, faults.DefaultConfig())
	md := metadata.MD{}
	for _, name := range headers.Propagated() {
		md.Set(strings.ToLower(name), "v-"+strings.ToLower(name))
	}
	md.Set(headers.Fault, "nobody=abort:500") // valid, targets no hop
	md.Set("x-not-listed", "secret")
	var tr metadata.MD
	resp, err := h.relay.Call(metadata.NewOutgoingContext(context.Background(), md), &chainv1.CallRequest{}, grpc.Trailer(&tr))
	if err != nil || resp.GetFirstName() != "Mick" {
		t.Fatalf("call: %v %v", resp, err)
	}
	if got := tr.Get(grpcwire.PathKey); len(got) != 1 || got[0] != "server1/v1@server1-test, server2/v1@server2-test" {
		t.Errorf("path trailer %q", got)
	}
	if got := tr.Get(grpcwire.StatusKey); len(got) != 1 || got[0] != "200" {
		t.Errorf("status trailer %q", got)
	}
	h.end.mu.Lock()
	seen := h.end.seen
	h.end.mu.Unlock()
	for _, name := range headers.Propagated() {
		k := strings.ToLower(name)
		want := "v-" + k
		if k == strings.ToLower(headers.Fault) {
			want = "nobody=abort:500"
		}
		if k == "user-agent" {
			// gRPC sets user-agent per connection (grpc-go drops it from call metadata):
			// each hop's own, not the caller's. Documented in docs/grpc.md.
			if v := seen.Get(k); len(v) != 1 || !strings.HasPrefix(v[0], "meshdemo-server1 grpc-go/") {
				t.Errorf("%s reached server2 as %q", k, v)
			}
			continue
		}
		if v := seen.Get(k); len(v) != 1 || v[0] != want {
			t.Errorf("%s reached server2 as %q, want %q", k, v, want)
		}
	}
	if v := seen.Get("x-not-listed"); len(v) != 0 {
		t.Errorf("unlisted header forwarded: %q", v)
	}
	// Metrics: one server series per hop, one client series on the relay.
	if n := testutil.CollectAndCount(h.relayKit.Metrics.Registry, "meshdemo_http_client_request_duration_seconds"); n != 1 {
		t.Errorf("relay client series: %d", n)
	}
}

// TestTwoValuesBothArrive: a propagated header sent twice (two baggage lines) reaches
// the next hop with both values, in order.
func TestTwoValuesBothArrive(t *testing.T) {
	t.Parallel()
	h := twoHops(t, faults.DefaultConfig())
	md := metadata.Pairs("baggage", "a=1", "baggage", "b=2")
	if _, err := h.relay.Call(metadata.NewOutgoingContext(context.Background(), md), &chainv1.CallRequest{}); err != nil {
		t.Fatal(err)
	}
	h.end.mu.Lock()
	seen := h.end.seen
	h.end.mu.Unlock()
	if v := seen.Get("baggage"); len(v) != 2 || v[0] != "a=1" || v[1] != "b=2" {
		t.Errorf("baggage reached server2 as %q, want both values", v)
	}
}

// TestRequestIDGenerated: outside a mesh the first hop makes an x-request-id and it
// reaches the end.
func TestRequestIDGenerated(t *testing.T) {
	t.Parallel()
	h := twoHops(t, faults.DefaultConfig())
	if _, err := h.relay.Call(context.Background(), &chainv1.CallRequest{}); err != nil {
		t.Fatal(err)
	}
	h.end.mu.Lock()
	defer h.end.mu.Unlock()
	if v := h.end.seen.Get("x-request-id"); len(v) != 1 || len(v[0]) != 36 {
		t.Errorf("x-request-id at the end: %q", v)
	}
}

// TestFaultStatusMapping: an abort directive's HTTP status becomes the gRPC code of
// gRPC's HTTP-to-gRPC mapping, and the trailer keeps the HTTP status and problem, also
// after the relay.
func TestFaultStatusMapping(t *testing.T) {
	t.Parallel()
	h := twoHops(t, faults.DefaultConfig())
	for _, tc := range []struct {
		status int
		code   codes.Code
	}{
		{400, codes.Internal}, {401, codes.Unauthenticated}, {403, codes.PermissionDenied},
		{404, codes.Unimplemented}, {429, codes.Unavailable}, {502, codes.Unavailable},
		{503, codes.Unavailable}, {504, codes.Unavailable}, {500, codes.Unknown}, {418, codes.Unknown},
	} {
		md := metadata.Pairs(headers.Fault, "server2=abort:"+itoa(tc.status))
		var tr metadata.MD
		_, err := h.relay.Call(metadata.NewOutgoingContext(context.Background(), md), &chainv1.CallRequest{}, grpc.Trailer(&tr))
		if status.Code(err) != tc.code {
			t.Errorf("abort %d: code %s, want %s", tc.status, status.Code(err), tc.code)
		}
		if got := tr.Get(grpcwire.StatusKey); len(got) != 1 || got[0] != itoa(tc.status) {
			t.Errorf("abort %d: status trailer %q", tc.status, got)
		}
		var p struct {
			Type    string
			Status  int
			Service string
		}
		if b := tr.Get(grpcwire.ProblemKey); len(b) != 1 || json.Unmarshal([]byte(b[0]), &p) != nil ||
			p.Type != faults.TypeAbort || p.Status != tc.status || p.Service != "server2" {
			t.Errorf("abort %d: problem trailer %q", tc.status, b)
		}
		if got := tr.Get(grpcwire.PathKey); len(got) != 1 || got[0] != "server1/v1@server1-test, server2/v1@server2-test" {
			t.Errorf("abort %d: path trailer %q", tc.status, got)
		}
	}
	// An invalid directive is a 400 from the hop that reads it first.
	md := metadata.Pairs(headers.Fault, "server2=explode")
	var tr metadata.MD
	_, err := h.relay.Call(metadata.NewOutgoingContext(context.Background(), md), &chainv1.CallRequest{}, grpc.Trailer(&tr))
	if status.Code(err) != codes.Internal || tr.Get(grpcwire.StatusKey)[0] != "400" {
		t.Errorf("invalid directive: %v %v", err, tr)
	}
	// The server metrics carry the full method as route and the HTTP status as code.
	if n := kittest.HistCount(t, h.endKit, "meshdemo_http_server_request_duration_seconds",
		map[string]string{"route": "/meshdemo.chain.v1.Chain/Call", "method": "POST", "code": "503"}); n != 1 {
		t.Errorf("server2 series for 503: %d observations", n)
	}
	if n := kittest.HistCount(t, h.relayKit, "meshdemo_http_client_request_duration_seconds",
		map[string]string{"upstream": "server2", "code": "429"}); n != 1 {
		t.Errorf("server1 client series for 429: %d observations", n)
	}
	if !strings.Contains(metricsText(t, h.endKit), `meshdemo_faults_injected_total{kind="abort",service="server2",version="v1"} 10`) {
		t.Errorf("faults not counted:\n%s", metricsText(t, h.endKit))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestExpectedTimeout: Envoy's x-envoy-expected-rq-timeout-ms becomes the call's
// deadline, so an injected delay past it ends in 504 (UNAVAILABLE) early.
func TestExpectedTimeout(t *testing.T) {
	t.Parallel()
	h := twoHops(t, faults.DefaultConfig())
	md := metadata.Pairs(headers.Fault, "server2=delay:3s", "x-envoy-expected-rq-timeout-ms", "100")
	var tr metadata.MD
	start := time.Now()
	_, err := h.endDirect.Call(metadata.NewOutgoingContext(context.Background(), md), &chainv1.CallRequest{}, grpc.Trailer(&tr))
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %s: the header did not bound the delay", el)
	}
	if status.Code(err) != codes.Unavailable || tr.Get(grpcwire.StatusKey)[0] != "504" {
		t.Fatalf("got %v, trailer %v", err, tr)
	}
	var p struct{ Type string }
	_ = json.Unmarshal([]byte(tr.Get(grpcwire.ProblemKey)[0]), &p)
	if p.Type != faults.TypeDeadline {
		t.Errorf("problem type %q", p.Type)
	}
}

// TestDeadlineTravels: the caller's gRPC deadline reaches the next hop; server1 keeps
// the budget margin, so it gives up on server2 before its own caller does and answers
// the HTTP kit's 504 naming server2.
func TestDeadlineTravels(t *testing.T) {
	t.Parallel()
	h := twoHops(t, faults.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	md := metadata.Pairs(headers.Fault, "server2=delay:5s")
	var tr metadata.MD
	start := time.Now()
	_, err := h.relay.Call(metadata.NewOutgoingContext(ctx, md), &chainv1.CallRequest{}, grpc.Trailer(&tr))
	if el := time.Since(start); el > 3*time.Second || status.Code(err) != codes.Unavailable || tr.Get(grpcwire.StatusKey)[0] != "504" {
		t.Fatalf("got %v, trailer %v after %s; want server1's 504 before the caller's deadline", err, tr, el)
	}
	var p struct{ Service, Upstream, Instance string }
	_ = json.Unmarshal([]byte(tr.Get(grpcwire.ProblemKey)[0]), &p)
	if p.Service != "server1" || p.Upstream != "server2" {
		t.Errorf("problem names service %q, upstream %q; want server1 about server2", p.Service, p.Upstream)
	}
	// Like the HTTP kit's 504, whose instance is the inbound path: here the inbound method.
	if p.Instance != "/meshdemo.chain.v1.Chain/Call" {
		t.Errorf("problem instance %q, want the inbound method", p.Instance)
	}
	// server2 saw the deadline: its delay ended with it (504, or 499 when server1's
	// cancellation arrives first), not after 5s.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, code := range []string{"504", "499"} {
			if kittest.HistCount(t, h.endKit, "meshdemo_http_server_request_duration_seconds",
				map[string]string{"route": "/meshdemo.chain.v1.Chain/Call", "code": code}) == 1 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("server2's delay did not end with the caller's deadline")
}

// TestSickAndHealth: the sick switch fails chain calls with FAULT_SICK_CODE while
// health stays SERVING (like /readyz); health follows the lifecycle phase.
func TestSickAndHealth(t *testing.T) {
	t.Parallel()
	k := kittest.Default(t, "server2")
	e := &end{}
	ln := kittest.GRPC(t, k, func(s *grpc.Server) { chainv1.RegisterChainServer(s, e) })
	cc := dial(t, ln)
	hc := healthpb.NewHealthClient(cc)
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health %q: %v", service, err)
		}
		return r.GetStatus()
	}
	k.Faults.SetSick(true)
	var tr metadata.MD
	_, err := chainv1.NewChainClient(cc).Call(context.Background(), &chainv1.CallRequest{}, grpc.Trailer(&tr))
	if status.Code(err) != codes.Unavailable || tr.Get(grpcwire.StatusKey)[0] != "503" {
		t.Fatalf("sick call: %v %v", err, tr)
	}
	for _, svc := range []string{"", "meshdemo.chain.v1.Chain"} {
		if s := check(svc); s != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("sick: health %q = %s, want SERVING", svc, s)
		}
	}
	k.Faults.SetSick(false)
	if _, err := chainv1.NewChainClient(cc).Call(context.Background(), &chainv1.CallRequest{}); err != nil {
		t.Fatalf("healthy again: %v", err)
	}
}

func metricsText(t *testing.T, k *workload.Kit) string {
	t.Helper()
	rec := httptest.NewRecorder()
	k.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// TestHealthFollowsPhase: NOT_SERVING while starting and draining, SERVING when ready,
// for the server and the chain service.
func TestHealthFollowsPhase(t *testing.T) {
	t.Parallel()
	srv, ln := endServer(t)
	go func() { _ = srv.Serve() }()
	defer srv.Shutdown(context.Background())
	hc := healthpb.NewHealthClient(dial(t, ln.Addr().String()))
	for _, tc := range []struct {
		phase health.Phase
		want  healthpb.HealthCheckResponse_ServingStatus
	}{
		{health.Starting, healthpb.HealthCheckResponse_NOT_SERVING},
		{health.Ready, healthpb.HealthCheckResponse_SERVING},
		{health.Draining, healthpb.HealthCheckResponse_NOT_SERVING},
	} {
		if tc.phase != health.Starting {
			srv.SetPhase(tc.phase)
		}
		for _, svc := range []string{"", "meshdemo.chain.v1.Chain"} {
			r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.GetStatus() != tc.want {
				t.Errorf("%s: health %q = %v %v, want %s", tc.phase, svc, r.GetStatus(), err, tc.want)
			}
		}
	}
}

// TestAttemptInPath: Envoy's x-envoy-attempt-count shows in the hop's path entry and
// in the attempts metric, as over HTTP.
func TestAttemptInPath(t *testing.T) {
	t.Parallel()
	h := twoHops(t, faults.DefaultConfig())
	var tr metadata.MD
	md := metadata.Pairs("x-envoy-attempt-count", "2")
	if _, err := h.relay.Call(metadata.NewOutgoingContext(context.Background(), md), &chainv1.CallRequest{}, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	if got := tr.Get(grpcwire.PathKey); len(got) != 1 || got[0] != "server1/v1@server1-test;attempt=2, server2/v1@server2-test" {
		t.Errorf("path trailer %q", got)
	}
	if !strings.Contains(metricsText(t, h.relayKit), `meshdemo_envoy_attempts_total{attempt="2",service="server1",version="v1"} 1`) {
		t.Error("attempt not counted")
	}
}

// endServer is a server2-like gRPC server (the chain's end and health) on a loopback
// listener, not yet serving.
func endServer(t *testing.T) (*grpcserver.Server, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := kittest.Default(t, "server2")
	return grpcworkload.Server(k, ln, func(s *grpc.Server) { chainv1.RegisterChainServer(s, &end{}) }), ln
}
