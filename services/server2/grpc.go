package main

import (
	"context"

	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// chainEnd answers the gRPC chain with the fields of GET /server2/end.
type chainEnd struct {
	chainv1.UnimplementedChainServer
	resp *chainv1.CallResponse
}

func newChainEnd(k *workload.Kit) *chainEnd {
	return &chainEnd{resp: &chainv1.CallResponse{
		FirstName: "Mick", LastName: "Chung",
		Service: k.Common.ServiceName, Version: k.Common.ServiceVersion, Instance: k.Common.Instance,
	}}
}

func (c *chainEnd) Call(context.Context, *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return c.resp, nil
}
