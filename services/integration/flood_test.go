package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshdemo/meshdemo/services/headers"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// rssKiB is a process's resident set (VmRSS) in KiB.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kib int
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kib); err == nil {
			return kib
		}
	}
	return 0
}

// TestGRPCStreamFlood: 20 000 (6 000 under the race detector) concurrent Chain/Call streams on one connection to
// server1 (each held a second by a delay fault on server2, each with a 3 s deadline, so
// the attack lasts about 3 s, on loopback). server1 advertises and enforces its
// MAX_CONCURRENT_STREAMS: the streams beyond it wait in the caller (HTTP/2 flow
// control; a caller that ignores the setting gets REFUSED_STREAM) and end with the
// caller's deadline, and server1's resident memory stays within the pod's 64 Mi limit.
// It prints the figures (RSS before and at peak, outcomes by code).
func TestGRPCStreamFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 000-stream flood")
	}
	c := startChain(t, nil)
	pid := c.server1.cmd.Process.Pid
	conn, err := grpc.NewClient("passthrough:///"+c.server1.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chain := chainv1.NewChainClient(conn)
	if _, err := chain.Call(context.Background(), &chainv1.CallRequest{}); err != nil {
		t.Fatal(err)
	}
	before := rssKiB(t, pid)

	streams := 20000
	if raceEnabled {
		streams = 6000 // the race detector allows 8128 live goroutines
	}
	peak := before
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r := rssKiB(t, pid); r > peak {
				peak = r
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	ctx := metadata.AppendToOutgoingContext(context.Background(), headers.Fault, "server2=delay:1s")
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range streams {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := chain.Call(cctx, &chainv1.CallRequest{})
			mu.Lock()
			outcomes[status.Code(err).String()]++
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-sampled
	var parts []string
	for code, n := range outcomes {
		parts = append(parts, fmt.Sprintf("%s %d", code, n))
	}
	t.Logf("server1 RSS %.1f MiB before, %.1f MiB at peak; %d streams in %s: %s (race detector %v)",
		float64(before)/1024, float64(peak)/1024, streams, took.Round(time.Millisecond), strings.Join(parts, ", "), raceEnabled)
	if outcomes["OK"] == 0 {
		t.Error("no call succeeded during the flood")
	}
	if !raceEnabled && peak > 64*1024 {
		t.Errorf("server1 peaked at %.1f MiB, over the pod's 64 Mi limit", float64(peak)/1024)
	}
	if _, err := chain.Call(context.Background(), &chainv1.CallRequest{}); err != nil {
		t.Errorf("after the flood: %v", err)
	}
}
