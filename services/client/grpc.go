package main

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/meshdemo/meshdemo/services/internal/grpcclient"
	"github.com/meshdemo/meshdemo/services/internal/grpcwire"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
	"github.com/meshdemo/meshdemo/services/pathheader"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// chainBody is server2's /server2/end body, field for field in the same order, so
// GET /client/grpc answers the same bytes as GET /client/server1.
type chainBody struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Service   string `json:"service"`
	Version   string `json:"version"`
	Instance  string `json:"instance"`
}

// handleGRPCChain runs the chain over gRPC on the one long-lived connection to server1
// and answers what GET /client/server1 answers: status, body, path header.
func handleGRPCChain(server1 *grpcclient.Upstream) http.Handler {
	chain := chainv1.NewChainClient(server1.Conn())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, reply := grpcwire.WithReply(r.Context())
		resp, err := chain.Call(ctx, &chainv1.CallRequest{})
		w.Header().Set(pathheader.Name, pathheader.Prepend(httpserver.SelfHop(r.Context()), reply.Path))
		if err != nil {
			grpcclient.WriteError(w, r, err)
			return
		}
		body, err := json.Marshal(chainBody{FirstName: resp.GetFirstName(), LastName: resp.GetLastName(),
			Service: resp.GetService(), Version: resp.GetVersion(), Instance: resp.GetInstance()})
		if err != nil {
			problem.Error(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}
