package integration

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/pathheader"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

func grpcDial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

type problemBody struct {
	Type     string `json:"type"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Service  string `json:"service"`
	Upstream string `json:"upstream"`
}

// TestGRPCChain: /client/grpc answers the bytes /client/server1 answers, with the three
// hops in the path header, and every hop's gRPC health says SERVING.
func TestGRPCChain(t *testing.T) {
	t.Parallel()
	c := startChain(t, nil)
	viaHTTP := call(t, "GET", c.client.URL+"/client/server1", nil, "")
	viaGRPC := call(t, "GET", c.client.URL+"/client/grpc", nil, "")
	if viaGRPC.code != 200 || string(viaGRPC.body) != string(viaHTTP.body) {
		t.Fatalf("grpc %d %q, http %d %q", viaGRPC.code, viaGRPC.body, viaHTTP.code, viaHTTP.body)
	}
	if ct := viaGRPC.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	hops, err := pathheader.Parse(viaGRPC.header.Get(pathheader.Name))
	if err != nil || len(hops) != 3 || hops[0].Service != "client" || hops[1].String() != "server1/v1@server1-it" || hops[2].String() != "server2/v1@server2-it" {
		t.Fatalf("path %q: %v", viaGRPC.header.Get(pathheader.Name), err)
	}
	for _, p := range []*proc{c.client, c.server1, c.server2} {
		r, err := healthpb.NewHealthClient(grpcDial(t, p.GRPC)).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s health: %v %v", p.name, r.GetStatus(), err)
		}
	}
	// The access log line covers the gRPC call on server2, with the request id.
	rid := "grpc-log-1"
	call(t, "GET", c.client.URL+"/client/grpc", map[string]string{"X-Request-Id": rid}, "")
	if l := c.server2.waitLog(t, rid); l["route"] != "/meshdemo.chain.v1.Chain/Call" || l["status"] != float64(200) {
		t.Errorf("server2 access line %v", l)
	}
}

// TestGRPCFaultsAndDeadline: a directive for server2 comes back as the same HTTP status
// and problem as over HTTP; server2 slower than server1's UPSTREAM_TIMEOUT is a 504
// naming server2.
func TestGRPCFaultsAndDeadline(t *testing.T) {
	t.Parallel()
	c := startChain(t, map[string]map[string]string{"server1": {"UPSTREAM_TIMEOUT": "400ms"}})
	r := call(t, "GET", c.client.URL+"/client/grpc", map[string]string{headers.Fault: "server2=abort:503"}, "")
	var p problemBody
	if r.code != 503 || r.header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(r.body, &p) != nil ||
		p.Type != "urn:meshdemo:fault:abort" || p.Status != 503 || p.Service != "server2" {
		t.Fatalf("abort: %d %s %s", r.code, r.header.Get("Content-Type"), r.body)
	}
	if hops, _ := pathheader.Parse(r.header.Get(pathheader.Name)); len(hops) != 3 {
		t.Errorf("abort path %q", r.header.Get(pathheader.Name))
	}
	start := time.Now()
	r = call(t, "GET", c.client.URL+"/client/grpc", map[string]string{headers.Fault: "server2=delay:3s"}, "")
	p = problemBody{}
	if r.code != 504 || json.Unmarshal(r.body, &p) != nil || p.Service != "server1" || p.Upstream != "server2" ||
		!strings.Contains(p.Detail, "server2") {
		t.Fatalf("deadline: %d %s", r.code, r.body)
	}
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Errorf("504 took %s", el)
	}
	// server1 unreachable from the client: 502 naming server1.
	c.server1.stop(t)
	r = call(t, "GET", c.client.URL+"/client/grpc", nil, "")
	p = problemBody{}
	if r.code != 502 || json.Unmarshal(r.body, &p) != nil || p.Service != "client" || p.Upstream != "server1" {
		t.Fatalf("unreachable: %d %s", r.code, r.body)
	}
}

// recorder is a bare gRPC chain end that keeps the metadata of the last call.
type recorder struct {
	chainv1.UnimplementedChainServer
	mu   sync.Mutex
	seen metadata.MD
}

func (r *recorder) Call(ctx context.Context, _ *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.seen = md.Copy()
	r.mu.Unlock()
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-meshdemo-path", "server2/v1@recorder"))
	return &chainv1.CallResponse{FirstName: "Mick"}, nil
}

// TestGRPCPropagation: every listed header sent to the client reaches server2 over
// gRPC (client and server1 are the real processes; server2 is a recorder).
func TestGRPCPropagation(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	srv := grpc.NewServer()
	chainv1.RegisterChainServer(srv, rec)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	s1 := start(t, "server1", map[string]string{"SERVER2_GRPC_ADDR": ln.Addr().String(), "PROPAGATE_HEADERS": "x-tenant"})
	cl := start(t, "client", map[string]string{"SERVER1_GRPC_ADDR": s1.GRPC, "PROPAGATE_HEADERS": "x-tenant"})
	sent := map[string]string{"x-tenant": "acme"}
	for _, h := range headers.Propagated() {
		sent[strings.ToLower(h)] = "v-" + strings.ToLower(h)
	}
	sent[strings.ToLower(headers.Fault)] = "nobody=abort:500"
	sent["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r := call(t, "GET", cl.URL+"/client/grpc", sent, "")
	if r.code != 200 || r.header.Get(pathheader.Name) != "client/v1@client-it, server1/v1@server1-it, server2/v1@recorder" {
		t.Fatalf("%d %s path %q", r.code, r.body, r.header.Get(pathheader.Name))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k, v := range sent {
		got := rec.seen.Get(k)
		if k == "user-agent" { // per connection in gRPC: server1's own (docs/grpc.md)
			if len(got) != 1 || !strings.HasPrefix(got[0], "meshdemo-server1 grpc-go/") {
				t.Errorf("%s arrived as %q", k, got)
			}
			continue
		}
		if len(got) != 1 || got[0] != v {
			t.Errorf("%s arrived as %q, want %q", k, got, v)
		}
	}
}

// TestGRPCGracefulDrain: SIGTERM on server2 during a gRPC call: health goes
// NOT_SERVING, the call in flight completes, the process exits cleanly.
func TestGRPCGracefulDrain(t *testing.T) {
	t.Parallel()
	s2 := start(t, "server2", map[string]string{"DRAIN_DELAY": "600ms", "SHUTDOWN_TIMEOUT": "5s"})
	cc := grpcDial(t, s2.GRPC)
	type result struct {
		resp *chainv1.CallResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx := metadata.AppendToOutgoingContext(context.Background(), headers.Fault, "server2=delay:1200ms")
		resp, err := chainv1.NewChainClient(cc).Call(ctx, &chainv1.CallRequest{})
		done <- result{resp, err}
	}()
	time.Sleep(200 * time.Millisecond)
	_ = s2.cmd.Process.Signal(syscallTERM)
	time.Sleep(200 * time.Millisecond)
	hc, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("during drain: health %v %v", hc.GetStatus(), err)
	}
	r := <-done
	if r.err != nil || r.resp.GetFirstName() != "Mick" {
		t.Fatalf("in-flight call: %v %v", r.resp, r.err)
	}
	select {
	case <-s2.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit")
	}
	if s2.exitErr != nil {
		t.Fatalf("exit: %v", s2.exitErr)
	}
}

// TestGRPCStopWithWatchOpen: a real server2 with a gRPC health Watch open (as a load
// balancer or a health-checking client keeps one) stops on SIGTERM at once and cleanly:
// the watcher sees NOT_SERVING during the drain pause, then its stream ends with
// UNAVAILABLE, and the process exits 0 well before SHUTDOWN_TIMEOUT.
func TestGRPCStopWithWatchOpen(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = 6 * time.Second
	s2 := start(t, "server2", map[string]string{"DRAIN_DELAY": "300ms", "SHUTDOWN_TIMEOUT": shutdownTimeout.String()})
	cc := grpcDial(t, s2.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 2*shutdownTimeout)
	defer cancel()
	watch, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch answer %v %v, want SERVING", first.GetStatus(), err)
	}
	signalled := time.Now()
	_ = s2.cmd.Process.Signal(syscallTERM)
	var seen []healthpb.HealthCheckResponse_ServingStatus
	var end error
	for {
		m, err := watch.Recv()
		if err != nil {
			end = err
			break
		}
		seen = append(seen, m.GetStatus())
	}
	if !slices.Contains(seen, healthpb.HealthCheckResponse_NOT_SERVING) {
		t.Errorf("Watch saw %v before it ended, want NOT_SERVING during the drain", seen)
	}
	if status.Code(end) != codes.Unavailable {
		t.Errorf("Watch ended with %v, want UNAVAILABLE", end)
	}
	select {
	case <-s2.exited:
	case <-time.After(2 * shutdownTimeout):
		t.Fatal("did not exit")
	}
	took := time.Since(signalled)
	if s2.exitErr != nil {
		t.Errorf("exit after %v: %v, want 0", took.Round(time.Millisecond), s2.exitErr)
	}
	if took >= shutdownTimeout/2 {
		t.Errorf("stop took %v with a Watch open, want well under SHUTDOWN_TIMEOUT %v", took.Round(time.Millisecond), shutdownTimeout)
	}
	t.Logf("SIGTERM to exit with a Watch open: %v", took.Round(time.Millisecond))
}
