package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/pathheader"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// end and relay stand in for server2's and server1's Chain implementations (main
// packages cannot be imported) on the real kit servers.
type end struct {
	chainv1.UnimplementedChainServer
}

func (end) Call(context.Context, *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return &chainv1.CallResponse{FirstName: "Mick", LastName: "Chung", Service: "server2", Version: "v1", Instance: "server2-test"}, nil
}

type relay struct {
	chainv1.UnimplementedChainServer
	up chainv1.ChainClient
}

func (r relay) Call(ctx context.Context, req *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return r.up.Call(ctx, req)
}

// TestGRPCFrontDoor: GET /client/grpc through kit gRPC servers for server1 and server2
// answers server2's body, three hops, and turns failures into the HTTP kit's problems.
func TestGRPCFrontDoor(t *testing.T) {
	t.Parallel()
	k2 := kittest.Kit(t, kittest.Common("server2"), faults.DefaultConfig(), nil)
	addr2 := kittest.GRPC(t, k2, func(s *grpc.Server) { chainv1.RegisterChainServer(s, end{}) })
	k1 := kittest.Default(t, "server1")
	up2, err := grpcworkload.Upstream(k1, "server2", addr2)
	if err != nil {
		t.Fatal(err)
	}
	addr1 := kittest.GRPC(t, k1, func(s *grpc.Server) { chainv1.RegisterChainServer(s, relay{up: chainv1.NewChainClient(up2.Conn())}) })

	_, srv := frontDoor(t, "http://"+unreachable, "http://"+unreachable, addr1)

	get := func(fault string) (int, http.Header, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+"/client/grpc", nil)
		if fault != "" {
			req.Header.Set(headers.Fault, fault)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	code, h, body := get("")
	want := `{"firstName":"Mick","lastName":"Chung","service":"server2","version":"v1","instance":"server2-test"}`
	if code != 200 || string(body) != want || h.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q %s", code, h.Get("Content-Type"), body)
	}
	if p := h.Get(pathheader.Name); p != "client/v1@client-test, server1/v1@server1-test, server2/v1@server2-test" {
		t.Errorf("path %q", p)
	}
	for _, tc := range []struct {
		fault, service, typ string
		status              int
		path                string
	}{
		{"server2=abort:503", "server2", faults.TypeAbort, 503, "client/v1@client-test, server1/v1@server1-test, server2/v1@server2-test"},
		{"server1=abort:429", "server1", faults.TypeAbort, 429, "client/v1@client-test, server1/v1@server1-test"},
		{"server2=abort:404", "server2", faults.TypeAbort, 404, "client/v1@client-test, server1/v1@server1-test, server2/v1@server2-test"},
		{"client=abort:500", "client", faults.TypeAbort, 500, "client/v1@client-test"},
		{"server2=bogus", "client", faults.TypeInvalid, 400, "client/v1@client-test"},
	} {
		code, h, body := get(tc.fault)
		var p struct {
			Type, Service string
			Status        int
		}
		if err := json.Unmarshal(body, &p); err != nil || code != tc.status || p.Status != tc.status ||
			p.Service != tc.service || p.Type != tc.typ || h.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %q %s", tc.fault, code, h.Get("Content-Type"), body)
		}
		if got := h.Get(pathheader.Name); got != tc.path {
			t.Errorf("%s: path %q, want %q", tc.fault, got, tc.path)
		}
	}
}

// TestGRPCFrontDoorUnreachable: server1 unreachable over gRPC is the HTTP chain's 502,
// field for field: the hop, the upstream and the instance (the inbound path).
func TestGRPCFrontDoorUnreachable(t *testing.T) {
	t.Parallel()
	_, srv := frontDoor(t, "http://"+unreachable, "http://"+unreachable, unreachable)
	for _, path := range []string{"/client/server1", "/client/grpc"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct {
			Status                      int
			Service, Upstream, Instance string
		}
		if err := json.Unmarshal(b, &p); err != nil || resp.StatusCode != 502 || p.Status != 502 ||
			p.Service != "client" || p.Upstream != "server1" || p.Instance != path {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}
