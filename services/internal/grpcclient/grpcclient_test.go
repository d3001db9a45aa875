package grpcclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"testing"

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
