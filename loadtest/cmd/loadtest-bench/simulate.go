package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
	"github.com/meshdemo/meshdemo/loadtest/internal/live"
	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

// simulate runs the live pipeline of a long run on simulated time, as fast as it can:
// the real recorder with 32 worker shards, one snapshot per simulated second, the
// checks evaluated and the event encoded and published to a hub with a subscriber
// that never reads (the worst browser). Pods are replaced every hour, so instance
// names keep changing. It prints the process's RSS and the live heap every few
// simulated hours; the goal is that the last is within 10 % (+2 MiB) of the first.
func simulate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	hours := fs.Int("hours", 24, "simulated hours")
	rate := fs.Int("rate", 100, "simulated requests per second")
	churn := fs.Bool("churn", true, "replace every pod each simulated hour (new instance names)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Unix(0, 0)
	rec := result.NewRecorder(start, nil)
	shards := make([]*result.Shard, 32)
	for i := range shards {
		shards[i] = rec.NewShard()
	}
	hub := live.NewHub(300)
	_, _, cancel := hub.Subscribe() // never read
	defer cancel()
	split, err := expect.ParseSplit("server2=v1:80,v2:20")
	if err != nil {
		return err
	}
	checks := expect.Checks{Splits: []expect.Split{split}, MaxP99: time.Second, Settings: expect.Defaults}
	run := live.Describe(live.Spec{}.Engine, start)

	began := time.Now()
	var first float64
	fmt.Fprintf(stdout, "simulated live run: %d h at %d req/s, 32 shards, a snapshot and an event per second, pods replaced hourly: %v\n", *hours, *rate, *churn)
	for sec := range *hours * 3600 {
		hour := sec / 3600
		if !*churn {
			hour = 0
		}
		paths := make([][]byte, 0, 4)
		for _, v := range []string{"v1", "v1", "v1", "v2"} {
			paths = append(paths, fmt.Appendf(nil, "client/v1@client-%d, server1/v1@server1-%d, server2/%s@server2-%s-%d", hour, hour, v, v, hour))
		}
		paths = append(paths, fmt.Appendf(nil, "client/v1@client-%d, server1/v1@server1-%d;attempt=2, server2/v1@server2-v1-%d", hour, hour, hour))
		at := start.Add(time.Duration(sec) * time.Second)
		for i := range *rate {
			code := 200
			if i%50 == 0 {
				code = 503
			}
			shards[i%len(shards)].Record(at.Add(time.Duration(i)*time.Second/time.Duration(*rate)),
				time.Duration(1+i%40)*time.Millisecond, code, "", paths[i%len(paths)])
		}
		snap := rec.Snapshot(at.Add(time.Second))
		ev := live.Event{Seq: int64(sec), State: live.StateRunning, Run: &run, Snapshot: &snap, Checks: checks.Evaluate(snap.Totals, snap.Latency.P99MS)}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		hub.Publish(b, sec == 0)
		if done := sec + 1; done%(3600*max(1, *hours/6)) == 0 || done == 3600 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			rss := rssOf(os.Getpid())
			if done == 3600 {
				first = rss
			}
			fmt.Fprintf(stdout, "  after %2d h: %d requests, RSS %.1f MiB, live heap %.1f MiB, event %d bytes (%.0fs of real time)\n",
				done/3600, snap.Totals.Requests, rss, float64(ms.HeapInuse)/(1<<20), len(b), time.Since(began).Seconds())
		}
	}
	last := rssOf(os.Getpid())
	mark := "PASS"
	if last > first*1.1+2 {
		mark = "MISS"
	}
	fmt.Fprintf(stdout, "%s  memory after %d h %.1f MiB against %.1f MiB after 1 h (goal: within 10 %% + 2 MiB)\n", mark, *hours, last, first)
	if mark == "MISS" {
		return fmt.Errorf("memory grew from %.1f to %.1f MiB", first, last)
	}
	return nil
}
