package grpcclient_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/grpcworkload"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

type okEnd struct {
	chainv1.UnimplementedChainServer
}

func (okEnd) Call(context.Context, *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return &chainv1.CallResponse{FirstName: "Mick"}, nil
}

// TestRecoveryAfterRestart: an upstream that was down for a while and comes back is
// called again within reconnectBound, as the HTTP client does at once (it dials per
// request), not after grpc-go's default backoff (1 s growing to 2 min, 1.6 x per
// failure: seconds after a short outage).
func TestRecoveryAfterRestart(t *testing.T) {
	t.Parallel()
	const reconnectBound = 800 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *grpc.Server {
		s := grpc.NewServer()
		chainv1.RegisterChainServer(s, okEnd{})
		go func() { _ = s.Serve(ln) }()
		return s
	}
	srv := serve(ln)
	k := kittest.Default(t, "client")
	up, err := grpcworkload.Upstream(k, "server1", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	chain := chainv1.NewChainClient(up.Conn())
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := chain.Call(ctx, &chainv1.CallRequest{})
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	// Down for 3 s, called all along (each failure lengthens the backoff).
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_ = call()
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	srv = serve(ln)
	defer srv.Stop()
	back := time.Now()
	for call() != nil {
		if time.Since(back) > 5*time.Second {
			t.Fatal("no answer 5 s after the upstream came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(back)
	t.Logf("answered %s after the upstream came back", took.Round(time.Millisecond))
	if took > reconnectBound {
		t.Errorf("recovered after %s, want within %s", took.Round(time.Millisecond), reconnectBound)
	}
}
