package main

import (
	"context"

	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// chainRelay is the middle of the gRPC chain: it calls server2's Call and answers what
// server2 answered (the kit's interceptors relay the path, status and problem).
type chainRelay struct {
	chainv1.UnimplementedChainServer
	server2 chainv1.ChainClient
}

func newChainRelay(server2 chainv1.ChainClient) *chainRelay { return &chainRelay{server2: server2} }

func (c *chainRelay) Call(ctx context.Context, req *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return c.server2.Call(ctx, req)
}
