//go:build e2e

package suite

import (
	"net/http"
	"testing"

	"github.com/meshdemo/meshdemo/services/headers"
)

// TestGRPCChain: GET /client/grpc runs the chain over gRPC (client → server1 → server2
// on GRPC_PORT) and answers what GET /client/server1 answers: 200, the same body, three
// hops in the path header. On kind this goes through the gateway and the sidecars' gRPC
// routes (the baseline has one server2 v1 pod, so the instance in both bodies is the same).
func TestGRPCChain(t *testing.T) {
	viaHTTP := get(t, "/client/server1", nil)
	r := get(t, "/client/grpc", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %s", chainStatus(r))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if string(r.body) != string(viaHTTP.body) {
		t.Errorf("body over gRPC %s, over HTTP %s", r.body, viaHTTP.body)
	}
	if got := services(hops(t, r)); got != "client,server1,server2" {
		t.Errorf("hops %s, want client,server1,server2", got)
	}
	// A fault directive for server2 comes back as its HTTP status and problem.
	p := wantProblem(t, get(t, "/client/grpc", http.Header{headers.Fault: {"server2=abort:503"}}), http.StatusServiceUnavailable)
	if p.Service != "server2" {
		t.Errorf("problem from %q, want server2", p.Service)
	}
}
