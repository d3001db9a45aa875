package grpcserver_test

import (
	"context"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/faults"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// BenchmarkRelay is one call through two kit hops (relay → end) on loopback.
func BenchmarkRelay(b *testing.B) {
	h := twoHopsTB(b, faults.DefaultConfig())
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.relay.Call(ctx, &chainv1.CallRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
