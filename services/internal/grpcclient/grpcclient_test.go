package grpcclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshdemo/meshdemo/services/internal/grpcclient"
	"github.com/meshdemo/meshdemo/services/internal/grpcwire"
	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// TestUnreachable: a refused connection is the HTTP kit's 502 naming the upstream, as
// a gRPC UNAVAILABLE, and WriteError answers it as problem JSON.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	k := kittest.Default(t, "server1")
	up, err := grpcworkload.Upstream(k, "server2", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	_, err = chainv1.NewChainClient(up.Conn()).Call(context.Background(), &chainv1.CallRequest{})
	var he grpcwire.HTTPError
	if !errors.As(err, &he) || he.HTTPStatus() != 502 || status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v", err)
	}
	rec := httptest.NewRecorder()
	grpcclient.WriteError(rec, httptest.NewRequest("GET", "/x", nil), err)
	var p struct {
		Status   int
		Upstream string
	}
	if rec.Code != 502 || rec.Header().Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != 502 || p.Upstream != "server2" {
		t.Fatalf("WriteError: %d %s", rec.Code, rec.Body)
	}
}

func TestOptionsRequired(t *testing.T) {
	t.Parallel()
	if _, err := grpcclient.New(grpcclient.Options{Name: "x"}); err == nil {
		t.Fatal("no error without address and timeout")
	}
}

// foreign is an upstream that is not meshdemo (or Envoy answering for it): a bare gRPC
// status and no x-meshdemo-* trailer.
type foreign struct {
	chainv1.UnimplementedChainServer
	code codes.Code
}

func (f foreign) Call(context.Context, *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return nil, status.Error(f.code, "from a foreign upstream")
}

// TestForeignStatusMapping: with no meshdemo trailer, the gRPC code alone says the HTTP
// status. RESOURCE_EXHAUSTED is what Envoy's local rate limit sends: 429, so a rate
// limit in front of server2 shows as a rate limit, not as an unreachable upstream.
func TestForeignStatusMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code codes.Code
		http int
	}{
		{codes.ResourceExhausted, 429},
		{codes.Unavailable, 502},
		{codes.InvalidArgument, 400},
		{codes.NotFound, 404},
		{codes.PermissionDenied, 403},
		{codes.Unauthenticated, 401},
		{codes.Unimplemented, 501},
		{codes.Internal, 500},
		{codes.Unknown, 500},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			chainv1.RegisterChainServer(srv, foreign{code: tc.code})
			go func() { _ = srv.Serve(ln) }()
			defer srv.Stop()
			k := kittest.Default(t, "server1")
			up, err := grpcworkload.Upstream(k, "server2", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			_, err = chainv1.NewChainClient(up.Conn()).Call(context.Background(), &chainv1.CallRequest{})
			var he grpcwire.HTTPError
			if !errors.As(err, &he) || he.HTTPStatus() != tc.http {
				t.Fatalf("%s: got %v, want HTTP %d", tc.code, err, tc.http)
			}
			var p struct {
				Status   int
				Upstream string
			}
			if json.Unmarshal(he.ProblemJSON(), &p) != nil || p.Status != tc.http || p.Upstream != "server2" {
				t.Errorf("%s: problem %s", tc.code, he.ProblemJSON())
			}
		})
	}
}
