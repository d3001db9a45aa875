package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/internal/workload"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// stuck is an upstream that answers only when its caller gives up.
type stuck struct {
	chainv1.UnimplementedChainServer
}

func (stuck) Call(ctx context.Context, _ *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestHalfClosedCallerGetsNoFalseSuccess: a caller that sends a whole request and then
// shuts down its sending side (shutdown(SHUT_WR), as some clients and proxies do) makes
// net/http cancel the request's context while the caller still reads. Whatever the
// route (HTTP relay, gRPC relay, user API), no status is invented for work that never
// happened: the connection closes without a response, and the hop records 499.
func TestHalfClosedCallerGetsNoFalseSuccess(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer slow.Close()
	addr := kittest.GRPC(t, kittest.Default(t, "server1"), func(s *grpc.Server) { chainv1.RegisterChainServer(s, stuck{}) })
	k, srv := frontDoor(t, slow.URL, slow.URL, addr)

	for _, tc := range []struct{ name, req, route string }{
		{"POST users", "POST /client/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"username\":\"a\"}", "/client/users"},
		{"HTTP chain", "GET /client/server1 HTTP/1.1\r\nHost: x\r\n\r\n", "/client/server1"},
		{"gRPC chain", "GET /client/grpc HTTP/1.1\r\nHost: x\r\n\r\n", "/client/grpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kittest.HalfClose(t, srv.Listener.Addr().String(), tc.req)
			if len(got) != 0 {
				t.Fatalf("a caller that half-closed got an answer no upstream gave:\n%s", firstLine(got))
			}
			// The access log and metric are written after the connection is aborted.
			const want = 1
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if n := serverCount(t, k, tc.route, "499"); n == want {
					return
				}
			}
			t.Errorf("%s: server metric code=499 count %d, want %d", tc.route, serverCount(t, k, tc.route, "499"), want)
		})
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// serverCount is how many requests to route the server metric recorded with code.
func serverCount(t *testing.T, k *workload.Kit, route, code string) uint64 {
	t.Helper()
	return kittest.HistCount(t, k, "meshdemo_http_server_request_duration_seconds", map[string]string{"route": route, "code": code})
}
