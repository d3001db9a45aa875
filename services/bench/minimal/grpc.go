package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// The gRPC yardstick (-grpc-addr / -grpc-upstream): the same chain over plain grpc-go,
// one connection per upstream, no interceptors. The client role still answers HTTP
// (GET /client/grpc), as the real client does.

type grpcEnd struct {
	chainv1.UnimplementedChainServer
	resp *chainv1.CallResponse
}

func (e *grpcEnd) Call(context.Context, *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return e.resp, nil
}

type grpcRelay struct {
	chainv1.UnimplementedChainServer
	up chainv1.ChainClient
}

func (r *grpcRelay) Call(ctx context.Context, req *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return r.up.Call(ctx, req)
}

func dialChain(upstream string) (chainv1.ChainClient, error) {
	cc, err := grpc.NewClient("dns:///"+upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return chainv1.NewChainClient(cc), nil
}

// setupGRPC adds the role's gRPC part: server2 and server1 serve Chain on grpcAddr,
// the client serves GET /client/grpc on mux. It returns the gRPC server to stop (nil
// for the client).
func setupGRPC(mux *http.ServeMux, role, grpcAddr, upstream, instance string) (*grpc.Server, error) {
	if role == "client" {
		up, err := dialChain(upstream)
		if err != nil {
			return nil, err
		}
		mux.Handle("GET /client/grpc", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
			defer cancel()
			resp, err := up.Call(ctx, &chainv1.CallRequest{})
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			body, _ := json.Marshal(struct {
				FirstName string `json:"firstName"`
				LastName  string `json:"lastName"`
				Service   string `json:"service"`
				Version   string `json:"version"`
				Instance  string `json:"instance"`
			}{resp.GetFirstName(), resp.GetLastName(), resp.GetService(), resp.GetVersion(), resp.GetInstance()})
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
		}))
		return nil, nil
	}
	if grpcAddr == "" {
		return nil, fmt.Errorf("-role %s needs -grpc-addr", role)
	}
	srv := grpc.NewServer()
	if role == "server2" {
		chainv1.RegisterChainServer(srv, &grpcEnd{resp: &chainv1.CallResponse{
			FirstName: "Mick", LastName: "Chung", Service: "server2", Version: "v1", Instance: instance}})
	} else {
		up, err := dialChain(upstream)
		if err != nil {
			return nil, err
		}
		chainv1.RegisterChainServer(srv, &grpcRelay{up: up})
	}
	ln, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
