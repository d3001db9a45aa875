package containers

import (
	"net/http"
	"testing"
)

// TestGRPCChain follows GET /client/grpc through the three containers over gRPC (the
// defaults GRPC_PORT=50051 and SERVER1_GRPC_ADDR/SERVER2_GRPC_ADDR=<alias>:50051): the
// same body and path as GET /client/server1.
func TestGRPCChain(t *testing.T) {
	s := need(t)
	client, server1, server2 := s.w["client"], s.w["server1"], s.w["server2"]
	viaHTTP := get(t, client.public+"/client/server1", nil).expect(t, http.StatusOK)
	r := get(t, client.public+"/client/grpc", nil).expect(t, http.StatusOK)
	if string(r.body) != string(viaHTTP.body) {
		t.Errorf("body over gRPC %s, over HTTP %s", r.body, viaHTTP.body)
	}
	checkPath(t, r.header, client, server1, server2)
}
