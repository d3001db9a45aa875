package result

import (
	"math"
	"testing"
	"time"
)

// TestPercentiles feeds known latencies and checks fortio's bucketed percentiles stay
// within one bucket of the exact values.
func TestPercentiles(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	rec := NewRecorder(start, nil)
	a, b := rec.NewShard(), rec.NewShard()
	// 10000 requests with latencies 1ms, 2ms, ..., 10000 * 1ms / 10 → 0.1ms..1000ms uniform.
	for i := 1; i <= 10000; i++ {
		s := a
		if i%2 == 0 {
			s = b
		}
		s.Record(start.Add(time.Duration(i)*time.Millisecond), time.Duration(i)*100*time.Microsecond, 200, "", nil)
	}
	sum := rec.Summary(10 * time.Second)
	if sum.Requests != 10000 || sum.Status[200] != 10000 {
		t.Fatalf("requests = %d, status = %v", sum.Requests, sum.Status)
	}
	if math.Abs(sum.ThroughputRPS-1000) > 1e-9 {
		t.Errorf("throughput = %v, want 1000", sum.ThroughputRPS)
	}
	cases := []struct {
		name      string
		got, want float64
	}{
		{"min", sum.Latency.MinMS, 0.1},
		{"p50", sum.Latency.P50MS, 500},
		{"p90", sum.Latency.P90MS, 900},
		{"p99", sum.Latency.P99MS, 990},
		{"p99.9", sum.Latency.P999MS, 999},
		{"max", sum.Latency.MaxMS, 1000},
		{"mean", sum.Latency.MeanMS, 500.05},
	}
	for _, c := range cases {
		// Around 500-1000ms fortio's buckets are 100ms wide at resolution 100µs; the
		// interpolation inside a bucket is exact for uniform data, so allow 1%.
		if math.Abs(c.got-c.want) > c.want*0.01+1e-9 {
			t.Errorf("%s = %.3fms, want %.3fms ± 1%%", c.name, c.got, c.want)
		}
	}
	var n int64
	for _, bk := range sum.Latency.Histogram {
		n += bk.Count
		if bk.EndMS < bk.StartMS {
			t.Errorf("bucket %+v ends before it starts", bk)
		}
	}
	if n != 10000 {
		t.Errorf("histogram holds %d, want 10000", n)
	}
	if len(sum.Timeline) != 11 || sum.Timeline[0].Requests != 999 || sum.Timeline[5].Status[200] != 1000 {
		t.Errorf("timeline: %d seconds, first %+v", len(sum.Timeline), sum.Timeline[0])
	}
}

func TestCountsHopsAndErrors(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rec := NewRecorder(start, nil)
	s := rec.NewShard()
	rec1 := []byte("client/v1@c-1, server1/v2@s1-2;attempt=2, server2/v1@s2-1")
	rec2 := []byte(" client/v1@c-1, server1/v1@s1-1, server2/v2@s2-9 ")
	for range 3 {
		s.Record(start, time.Millisecond, 200, "", rec1)
	}
	s.Record(start, time.Millisecond, 200, "", rec2)
	s.Record(start.Add(1500*time.Millisecond), time.Millisecond, 503, "", []byte("client/v1@c-1, server1/v1@s1-1"))
	s.Record(start, time.Millisecond, 200, "", nil)
	s.Record(start, time.Millisecond, 200, "", []byte("garbage"))
	s.Record(start, time.Millisecond, 200, "", []byte("garbage"))
	s.Record(start, 3*time.Second, 0, ErrTimeout, nil)
	s.Record(start, time.Millisecond, 0, ErrConnect, nil)

	if p := rec.Snapshot(start.Add(time.Second)).Totals; p.Requests != 10 || p.Errors[ErrTimeout] != 1 || p.Status[503] != 1 {
		t.Errorf("snapshot totals = %+v", p)
	}
	sum := rec.Summary(time.Second)
	want := map[string]map[string]int64{
		"client":  {"v1": 5},
		"server1": {"v2": 3, "v1": 2},
		"server2": {"v1": 3, "v2": 1},
	}
	for svc, vers := range want {
		for v, n := range vers {
			if got := sum.Hops[svc][v]; got != n {
				t.Errorf("hops[%s][%s] = %d, want %d", svc, v, got, n)
			}
		}
		if len(sum.Hops[svc]) != len(vers) {
			t.Errorf("hops[%s] = %v, want %v", svc, sum.Hops[svc], vers)
		}
	}
	if sum.Status[200] != 7 || sum.Status[503] != 1 {
		t.Errorf("status = %v", sum.Status)
	}
	if sum.Errors[ErrTimeout] != 1 || sum.Errors[ErrConnect] != 1 {
		t.Errorf("errors = %v", sum.Errors)
	}
	if sum.PathMissing != 1 || sum.PathInvalid != 2 {
		t.Errorf("missing = %d invalid = %d, want 1 and 2", sum.PathMissing, sum.PathInvalid)
	}
	if got := sum.Timeline[1].Versions["server1/v1"]; got != 1 {
		t.Errorf("second 1 server1/v1 = %d, want 1", got)
	}
	if got := sum.Services(); len(got) != 3 || got[0] != "client" {
		t.Errorf("services = %v", got)
	}
}

// TestFirstHopPerService: a path naming a service twice (the chain called it twice)
// counts that service once per request, for the version of its first hop.
func TestFirstHopPerService(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rec := NewRecorder(start, nil)
	s := rec.NewShard()
	s.Record(start, time.Millisecond, 200, "", []byte("client/v1@c-1, server1/v1@s1-1, server1/v2@s1-2, server2/v1@s2-1"))
	s.Record(start, time.Millisecond, 200, "", []byte("client/v1@c-1, server1/v2@s1-2, server1/v2@s1-2"))
	sum := rec.Summary(time.Second)
	want := map[string]map[string]int64{
		"client":  {"v1": 2},
		"server1": {"v1": 1, "v2": 1},
		"server2": {"v1": 1},
	}
	for svc, vers := range want {
		if got := sum.Hops[svc]; len(got) != len(vers) || got["v1"] != vers["v1"] || got["v2"] != vers["v2"] {
			t.Errorf("hops[%s] = %v, want %v", svc, got, vers)
		}
	}
	if got := sum.Timeline[0].Versions; got["server1/v1"] != 1 || got["server1/v2"] != 1 {
		t.Errorf("timeline versions %v, want server1/v1 1 and server1/v2 1", got)
	}
}

// TestLastSecondLength: the timeline says how long each second lasted, so that a
// partial last second can be read as a rate; Finish bounds it, and without Finish the
// run is taken to end elapsed after the start.
func TestLastSecondLength(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	cases := []struct {
		name    string
		finish  time.Duration // 0: Finish not called
		elapsed time.Duration
		want    []float64
	}{
		{"2.5 s run", 2500 * time.Millisecond, 2600 * time.Millisecond, []float64{1, 1, 0.5}},
		{"without Finish, elapsed bounds it", 0, 2250 * time.Millisecond, []float64{1, 1, 0.25}},
		{"whole seconds", 3 * time.Second, 3100 * time.Millisecond, []float64{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec := NewRecorder(start, nil)
			s := rec.NewShard()
			// 100 req/s, the last one due 10 ms before the load ends.
			end := c.finish
			if end == 0 {
				end = c.elapsed
			}
			for at := time.Duration(0); at < end; at += 10 * time.Millisecond {
				s.Record(start.Add(at), time.Millisecond, 200, "", nil)
			}
			if c.finish > 0 {
				rec.Finish(start.Add(c.finish))
			}
			sum := rec.Summary(c.elapsed)
			if len(sum.Timeline) != len(c.want) {
				t.Fatalf("%d seconds, want %d", len(sum.Timeline), len(c.want))
			}
			for i, sec := range sum.Timeline {
				if math.Abs(sec.Seconds-c.want[i]) > 1e-9 {
					t.Errorf("second %d lasted %v, want %v", i, sec.Seconds, c.want[i])
				}
				if rate := float64(sec.Requests) / sec.Seconds; math.Abs(rate-100) > 1e-6 {
					t.Errorf("second %d: %d requests in %vs = %v req/s, want 100", i, sec.Requests, sec.Seconds, rate)
				}
			}
		})
	}
}

// TestSnapshots: each snapshot holds the totals so far and what was recorded since
// the previous one (versions, instances, retries, statuses, latency).
func TestSnapshots(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	rec := NewRecorder(start, nil)
	a, b := rec.NewShard(), rec.NewShard()
	v1 := []byte("client/v1@c-1, server2/v1@s2-a")
	v2retry := []byte("client/v1@c-1, server2/v2@s2-b;attempt=2")
	for i := range 100 {
		a.Record(start.Add(time.Duration(i)*10*time.Millisecond), 2*time.Millisecond, 200, "", v1)
	}
	first := rec.Snapshot(start.Add(time.Second))
	for i := range 50 {
		b.Record(start.Add(time.Second+time.Duration(i)*20*time.Millisecond), 40*time.Millisecond, 503, "", v2retry)
	}
	second := rec.Snapshot(start.Add(2 * time.Second))

	if first.Last.Requests != 100 || first.Totals.Requests != 100 || first.Last.Hops["server2"]["v1"] != 100 {
		t.Errorf("first: %+v", first)
	}
	l, tot := second.Last, second.Totals
	if l.Requests != 50 || l.Status[503] != 50 || l.Status[200] != 0 || len(l.Status) != 1 {
		t.Errorf("second's last status %v requests %d", l.Status, l.Requests)
	}
	if l.Hops["server2"]["v2"] != 50 || len(l.Hops["server2"]) != 1 || l.Instances["server2"]["s2-b"] != 50 || l.Retried != 50 || l.RetriedHops["server2"] != 50 {
		t.Errorf("second's last hops %v instances %v retried %d %v", l.Hops, l.Instances, l.Retried, l.RetriedHops)
	}
	if tot.Requests != 150 || tot.Hops["server2"]["v1"] != 100 || tot.Hops["server2"]["v2"] != 50 || tot.Instances["client"]["c-1"] != 150 || tot.Retried != 50 {
		t.Errorf("totals %+v", tot)
	}
	if second.LastSeconds != 1 || second.ElapsedSeconds != 2 {
		t.Errorf("last %vs at %vs", second.LastSeconds, second.ElapsedSeconds)
	}
	if math.Abs(second.LastLatency.P50MS-40) > 1 || first.LastLatency.P99MS > 3 || second.Latency.P90MS < 30 {
		t.Errorf("latency: first last %+v, second last %+v, whole %+v", first.LastLatency, second.LastLatency, second.Latency)
	}
	// The report sees the same run.
	sum := rec.Summary(2 * time.Second)
	if sum.Requests != 150 || sum.Retried != 50 || len(sum.Timeline) != 2 || sum.Timeline[1].Versions["server2/v2"] != 50 {
		t.Errorf("summary %+v", sum)
	}
}

// TestTimelineBounded simulates a run longer than MaxTimeline with a snapshot every
// second: the timeline keeps only the last MaxTimeline seconds, numbered as in the
// run, while the totals count everything; a late response for a second already
// dropped still counts in the totals.
func TestTimelineBounded(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	rec := NewRecorder(start, nil)
	s := rec.NewShard()
	n := MaxTimeline + 500
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second)
		s.Record(at, time.Millisecond, 200, "", []byte("server2/v1@x"))
		s.Record(at.Add(500*time.Millisecond), time.Millisecond, 200, "", []byte("server2/v2@y"))
		rec.Snapshot(at.Add(time.Second))
	}
	s.Record(start, time.Millisecond, 200, "", nil) // due in second 0, long gone
	sum := rec.Summary(time.Duration(n) * time.Second)
	if len(sum.Timeline) != MaxTimeline || sum.Timeline[0].Second != n-MaxTimeline || sum.Timeline[MaxTimeline-1].Second != n-1 {
		t.Fatalf("timeline: %d seconds from %d", len(sum.Timeline), sum.Timeline[0].Second)
	}
	if sum.Requests != int64(2*n+1) || sum.Hops["server2"]["v2"] != int64(n) || sum.Timeline[10].Requests != 2 {
		t.Errorf("requests %d, v2 %d, second %+v", sum.Requests, sum.Hops["server2"]["v2"], sum.Timeline[10])
	}
	if len(s.timeline) != 0 {
		t.Errorf("the shard still holds %d seconds", len(s.timeline))
	}
}
