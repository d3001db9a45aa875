package grpcserver_test

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/faults"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// fixedEnd answers every call with the same response and does nothing else, so the
// kit and plain pairs below differ only in the kit.
type fixedEnd struct {
	chainv1.UnimplementedChainServer
	resp *chainv1.CallResponse
}

func (e *fixedEnd) Call(context.Context, *chainv1.CallRequest) (*chainv1.CallResponse, error) {
	return e.resp, nil
}

func newFixedEnd() *fixedEnd {
	return &fixedEnd{resp: &chainv1.CallResponse{FirstName: "Mick", LastName: "Chung", Service: "server2", Version: "v1", Instance: "server2-test"}}
}

// kitPair is relay → end on the real kit (interceptors, metrics, access log, trailers).
func kitPair(b *testing.B) chainv1.ChainClient {
	return kitHops(b, faults.DefaultConfig(), newFixedEnd()).relay
}

// plainPair is the same two hops on grpc-go alone: the yardstick of make bench's
// minimal chain, in process.
func plainPair(b *testing.B) chainv1.ChainClient {
	serve := func(register func(*grpc.Server)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := grpc.NewServer()
		register(s)
		go func() { _ = s.Serve(ln) }()
		b.Cleanup(s.Stop)
		return ln.Addr().String()
	}
	endAddr := serve(func(s *grpc.Server) { chainv1.RegisterChainServer(s, newFixedEnd()) })
	up := chainv1.NewChainClient(dial(b, endAddr))
	relayAddr := serve(func(s *grpc.Server) { chainv1.RegisterChainServer(s, &relay{up: up}) })
	return chainv1.NewChainClient(dial(b, relayAddr))
}

// BenchmarkRelay is one call through two gRPC hops (relay → end) on loopback, on the
// kit and on plain grpc-go in the same run: chunks of calls alternate between the two,
// and it reports each side's time, bytes and allocations per call and the kit/plain
// time ratio. Calls are sequential (one in flight), so time is mostly latency; the
// bytes and allocations are what the garbage collector pays for under load.
func BenchmarkRelay(b *testing.B) {
	sides := []struct {
		name   string
		client chainv1.ChainClient
		dur    time.Duration
		bytes  uint64
		allocs uint64
		calls  int
	}{{name: "kit", client: kitPair(b)}, {name: "plain", client: plainPair(b)}}
	ctx := context.Background()
	for i := range sides { // connect and warm both
		for range 200 {
			if _, err := sides[i].client.Call(ctx, &chainv1.CallRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	const chunk = 50
	var before, after runtime.MemStats
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(chunk, b.N-done)
		for i := range sides {
			s := &sides[i]
			runtime.ReadMemStats(&before)
			start := time.Now()
			for range n {
				if _, err := s.client.Call(ctx, &chainv1.CallRequest{}); err != nil {
					b.Fatal(err)
				}
			}
			s.dur += time.Since(start)
			runtime.ReadMemStats(&after)
			s.bytes += after.TotalAlloc - before.TotalAlloc
			s.allocs += after.Mallocs - before.Mallocs
			s.calls += n
		}
		done += n
	}
	b.StopTimer()
	for _, s := range sides {
		b.ReportMetric(float64(s.dur.Nanoseconds())/float64(s.calls)/1e3, s.name+"-µs/call")
		b.ReportMetric(float64(s.bytes)/float64(s.calls), s.name+"-B/call")
		b.ReportMetric(float64(s.allocs)/float64(s.calls), s.name+"-allocs/call")
	}
	b.ReportMetric(float64(sides[0].dur)/float64(sides[1].dur), "kit/plain-time")
}
