// Package result records what every request got back and turns it into a Summary:
// latency percentiles and histogram (fortio's), counts per status code and per error
// kind, the version of every hop read from the X-Meshdemo-Path response header, and the
// same per second of the run for the report's charts.
//
// Recording is sharded: every load worker owns a Shard and is the only writer to it, so
// the hot path takes an uncontended lock (which the progress line reads under).
package result

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"fortio.org/fortio/stats"

	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Error kinds for requests that got no HTTP status.
const (
	ErrTimeout   = "timeout"   // no complete response within the request timeout
	ErrConnect   = "connect"   // a new connection got no response byte: refused, reset, closed
	ErrTransport = "transport" // the connection broke during the response
)

// Resolution is the histogram's unit in seconds: fortio's buckets run from 1 to 100000
// units, so 100µs covers 100µs..10s finely; slower responses land in the last bucket
// (the max stays exact).
const Resolution = 0.0001

// Observer sees every request as it is recorded (the Prometheus exporter is one).
type Observer interface {
	Observe(code int, errKind string, latency time.Duration, hops []Hop)
}

// Hop is a service and the version that served it.
type Hop struct{ Service, Version string }

// Instance is a service and the instance (pod) that served it.
type Instance struct{ Service, Name string }

// MaxTimeline is how many seconds of the per-second timeline a recorder keeps: the
// last hour. A longer run's report covers its last hour second by second (each Second
// carries its index) and the whole run in its totals, so a day-long run's memory stays
// bounded.
const MaxTimeline = 3600

// Recorder collects the shards of one run.
type Recorder struct {
	start time.Time
	obs   Observer

	mu     sync.Mutex
	shards []*Shard
	end    time.Time // when the load stopped; zero until Finish

	// What the shards handed over at each Snapshot (or Summary): the latency of the
	// whole run, the per-second timeline (bounded), and the totals of the previous
	// snapshot, from which the next one's last second is the difference.
	collect  sync.Mutex
	hist     *stats.Histogram
	timeline []second // timeline[i] is second base+i
	base     int
	prev     Counts
	prevAt   time.Time
}

// NewRecorder starts a recording whose timeline counts seconds from start; obs may be nil.
func NewRecorder(start time.Time, obs Observer) *Recorder {
	return &Recorder{start: start, obs: obs, hist: stats.NewHistogram(0, Resolution), prev: NewCounts(), prevAt: start}
}

// Start is the instant the timeline counts from.
func (r *Recorder) Start() time.Time { return r.start }

// Finish marks the instant the load stopped: no request is due or sent after it (the
// responses still in flight may be recorded later). It is where the timeline's last
// second ends, so a run that did not last a whole number of seconds ends with a
// partial second whose length Summary reports.
func (r *Recorder) Finish(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.end = at
}

// NewShard returns a shard for one worker.
func (r *Recorder) NewShard() *Shard {
	s := &Shard{
		start:    r.start,
		obs:      r.obs,
		hist:     stats.NewHistogram(0, Resolution),
		counts:   NewCounts(),
		timeline: map[int]*second{},
		cache:    map[string]*parsed{},
	}
	r.mu.Lock()
	r.shards = append(r.shards, s)
	r.mu.Unlock()
	return s
}

// Shard is one worker's share of the recording.
type Shard struct {
	start time.Time
	obs   Observer

	mu       sync.Mutex
	hist     *stats.Histogram // latencies since the recorder last collected
	counts   Counts           // running totals
	timeline map[int]*second  // seconds (by due time) since the recorder last collected
	cache    map[string]*parsed
}

type second struct {
	requests int64
	codes    map[int]int64
	errs     int64
	versions map[Hop]int64
}

func newSecond() *second { return &second{codes: map[int]int64{}, versions: map[Hop]int64{}} }

func (s *second) add(o *second) {
	s.requests += o.requests
	s.errs += o.errs
	for k, v := range o.codes {
		s.codes[k] += v
	}
	for k, v := range o.versions {
		s.versions[k] += v
	}
}

// parsed is what one path header value says, cached per distinct value.
type parsed struct {
	hops      []Hop      // first hop per service
	instances []Instance // the same hops' instances
	retried   []string   // services whose hop was reached by a retry (attempt >= 2)
	invalid   bool
}

const maxCached = 4096

// attemptKey is the path header's hop attribute carrying Envoy's attempt count, as
// documented in services/pathheader (which names it in prose, not in a constant).
const attemptKey = "attempt"

// Record adds one request. sent is when it was due (open model) or sent (closed model),
// code is 0 when no response arrived (errKind then says why), path is the raw value
// of the path header (nil when absent).
func (s *Shard) Record(sent time.Time, latency time.Duration, code int, errKind string, path []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hist.Record(latency.Seconds())
	c := &s.counts
	c.Requests++
	sec := s.bucket(sent)
	sec.requests++
	var hops []Hop
	if code == 0 {
		c.Errors[errKind]++
		sec.errs++
	} else {
		c.Status[code]++
		sec.codes[code]++
		p := s.parse(path)
		switch {
		case p == nil:
			c.PathMissing++
		case p.invalid:
			c.PathInvalid++
		default:
			hops = p.hops
			for _, h := range p.hops {
				c.addHop(h, 1)
				sec.versions[h]++
			}
			for _, in := range p.instances {
				c.addInstance(in, 1)
			}
			if len(p.retried) > 0 {
				c.Retried++
				for _, svc := range p.retried {
					c.RetriedHops[svc]++
				}
			}
		}
	}
	if s.obs != nil {
		s.obs.Observe(code, errKind, latency, hops)
	}
}

func (s *Shard) bucket(sent time.Time) *second {
	i := max(0, int(sent.Sub(s.start)/time.Second))
	sec := s.timeline[i]
	if sec == nil {
		sec = newSecond()
		s.timeline[i] = sec
	}
	return sec
}

// parse reads a path header (nil when absent), first hop per service only (a service
// that shows up twice was called twice by the chain, not served by two versions).
func (s *Shard) parse(path []byte) *parsed {
	path = bytes.TrimSpace(path)
	if len(path) == 0 {
		return nil
	}
	if p, ok := s.cache[string(path)]; ok {
		return p
	}
	p := &parsed{}
	hops, err := pathheader.Parse(string(path))
	if err != nil {
		p.invalid = true
	}
	for _, h := range hops {
		if slices.ContainsFunc(p.hops, func(x Hop) bool { return x.Service == h.Service }) {
			continue
		}
		p.hops = append(p.hops, Hop{Service: h.Service, Version: h.Version})
		p.instances = append(p.instances, Instance{Service: h.Service, Name: h.Instance})
		if n, err := strconv.Atoi(h.Attrs[attemptKey]); err == nil && n >= 2 {
			p.retried = append(p.retried, h.Service)
		}
	}
	if len(s.cache) < maxCached {
		s.cache[string(path)] = p
	}
	return p
}

// Counts are running totals of a run (or, in a Snapshot, of one second of it). The
// same counts feed the CLI summary, the JSON and HTML reports, the checks and the live
// page.
type Counts struct {
	Requests int64 `json:"requests"`
	// Status counts responses per HTTP status code.
	Status map[int]int64 `json:"status"`
	// Errors counts requests that got no status, per kind (timeout, connect, transport).
	Errors map[string]int64 `json:"errors"`
	// Hops counts, per service named in the path header, the responses per version.
	Hops map[string]map[string]int64 `json:"hops"`
	// Instances counts, per service, the responses per instance (pod) that served it.
	Instances map[string]map[string]int64 `json:"instances"`
	// Retried counts responses on which some hop was reached by a retry (attempt=N,
	// N >= 2, in the path header); RetriedHops counts them per service.
	Retried     int64            `json:"retried"`
	RetriedHops map[string]int64 `json:"retried_hops"`
	// PathMissing counts responses without the path header, PathInvalid those whose
	// header did not parse.
	PathMissing int64 `json:"path_missing"`
	PathInvalid int64 `json:"path_invalid"`
}

// NewCounts returns empty counts with their maps made.
func NewCounts() Counts {
	return Counts{
		Status: map[int]int64{}, Errors: map[string]int64{},
		Hops: map[string]map[string]int64{}, Instances: map[string]map[string]int64{},
		RetriedHops: map[string]int64{},
	}
}

func (c *Counts) addHop(h Hop, n int64) {
	if c.Hops[h.Service] == nil {
		c.Hops[h.Service] = map[string]int64{}
	}
	c.Hops[h.Service][h.Version] += n
}

func (c *Counts) addInstance(in Instance, n int64) {
	if c.Instances[in.Service] == nil {
		c.Instances[in.Service] = map[string]int64{}
	}
	c.Instances[in.Service][in.Name] += n
}

// add adds o times sign (1 or -1) to c.
func (c *Counts) add(o Counts, sign int64) {
	c.Requests += sign * o.Requests
	c.Retried += sign * o.Retried
	c.PathMissing += sign * o.PathMissing
	c.PathInvalid += sign * o.PathInvalid
	for k, v := range o.Status {
		c.Status[k] += sign * v
	}
	for k, v := range o.Errors {
		c.Errors[k] += sign * v
	}
	for k, v := range o.RetriedHops {
		c.RetriedHops[k] += sign * v
	}
	for svc, m := range o.Hops {
		for ver, v := range m {
			c.addHop(Hop{Service: svc, Version: ver}, sign*v)
		}
	}
	for svc, m := range o.Instances {
		for name, v := range m {
			c.addInstance(Instance{Service: svc, Name: name}, sign*v)
		}
	}
}

// since returns c minus an earlier state prev, leaving out what did not change.
func (c Counts) since(prev Counts) Counts {
	d := NewCounts()
	d.add(c, 1)
	d.add(prev, -1)
	maps.DeleteFunc(d.Status, func(_ int, v int64) bool { return v == 0 })
	maps.DeleteFunc(d.Errors, func(_ string, v int64) bool { return v == 0 })
	maps.DeleteFunc(d.RetriedHops, func(_ string, v int64) bool { return v == 0 })
	for _, m := range []map[string]map[string]int64{d.Hops, d.Instances} {
		for svc, per := range m {
			maps.DeleteFunc(per, func(_ string, v int64) bool { return v == 0 })
			if len(per) == 0 {
				delete(m, svc)
			}
		}
	}
	return d
}

// Versions returns the versions seen for a service, sorted, for stable output.
func (c Counts) Versions(service string) []string {
	return slices.Sorted(maps.Keys(c.Hops[service]))
}

// Services returns the services seen in path headers, sorted.
func (c Counts) Services() []string {
	return slices.Sorted(maps.Keys(c.Hops))
}

// Snapshot is a running run at one instant: its totals and what came back in the
// last second. It is what the progress line prints and what the live page's event
// stream carries.
type Snapshot struct {
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Totals since the start of the run, with latency percentiles over all of it.
	Totals  Counts      `json:"totals"`
	Latency Percentiles `json:"latency"`
	// Last is what was recorded since the previous snapshot (by the time the response
	// came back, unlike the report's timeline, which counts by the time a request was
	// due), over LastSeconds seconds.
	Last        Counts      `json:"last"`
	LastLatency Percentiles `json:"last_latency"`
	LastSeconds float64     `json:"last_seconds"`
}

// Percentiles are latency percentiles in milliseconds.
type Percentiles struct {
	P50MS float64 `json:"p50_ms"`
	P90MS float64 `json:"p90_ms"`
	P99MS float64 `json:"p99_ms"`
}

// Snapshot collects the shards at now: the totals so far, and what changed since the
// previous snapshot. It also moves the shards' recent seconds into the recorder's
// bounded timeline, so calling it every second keeps a long run's memory flat.
// Workers keep recording while it runs; each shard is locked only while it is read.
func (r *Recorder) Snapshot(now time.Time) Snapshot {
	r.collect.Lock()
	defer r.collect.Unlock()
	last := stats.NewHistogram(0, Resolution)
	totals := r.gather(last)
	snap := Snapshot{
		ElapsedSeconds: now.Sub(r.start).Seconds(),
		Totals:         totals,
		Latency:        percentiles(r.hist),
		Last:           totals.since(r.prev),
		LastLatency:    percentiles(last),
		LastSeconds:    now.Sub(r.prevAt).Seconds(),
	}
	r.prev, r.prevAt = totals, now
	return snap
}

// gather adds up the shards' totals and moves their latencies (into the whole run's
// histogram and into last) and their seconds (into the timeline). Call with collect held.
func (r *Recorder) gather(last *stats.Histogram) Counts {
	totals := NewCounts()
	for _, s := range r.snapshotShards() {
		s.mu.Lock()
		totals.add(s.counts, 1)
		last.Transfer(s.hist) // empties the shard's
		for i, sec := range s.timeline {
			r.second(i).add(sec)
		}
		clear(s.timeline)
		s.mu.Unlock()
	}
	r.hist.Transfer(last.Clone())
	return totals
}

// second returns second i of the timeline, dropping the oldest seconds beyond
// MaxTimeline; a second already dropped gets a throw-away bucket.
func (r *Recorder) second(i int) *second {
	if len(r.timeline) == 0 {
		r.base = i
	}
	if i < r.base {
		if r.base+len(r.timeline)-i > MaxTimeline {
			return newSecond()
		}
		r.timeline = append(make([]second, r.base-i), r.timeline...)
		r.base = i
	}
	for len(r.timeline) <= i-r.base {
		r.timeline = append(r.timeline, second{})
	}
	if drop := len(r.timeline) - MaxTimeline; drop > 0 {
		r.timeline = slices.Delete(r.timeline, 0, drop)
		r.base += drop
	}
	sec := &r.timeline[i-r.base]
	if sec.codes == nil {
		*sec = *newSecond()
	}
	return sec
}

func (r *Recorder) snapshotShards() []*Shard {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.shards)
}

// Summary is what a run measured; it is the "summary" object of the JSON report.
type Summary struct {
	Counts
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	ThroughputRPS  float64 `json:"throughput_rps"`
	Latency        Latency `json:"latency"`
	// Timeline is the run second by second, its last MaxTimeline seconds at most.
	Timeline []Second `json:"timeline"`
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	MinMS     float64  `json:"min_ms"`
	MeanMS    float64  `json:"mean_ms"`
	P50MS     float64  `json:"p50_ms"`
	P90MS     float64  `json:"p90_ms"`
	P99MS     float64  `json:"p99_ms"`
	P999MS    float64  `json:"p99_9_ms"`
	MaxMS     float64  `json:"max_ms"`
	Histogram []Bucket `json:"histogram"`
}

// Bucket is one bar of the latency histogram.
type Bucket struct {
	StartMS float64 `json:"start_ms"`
	EndMS   float64 `json:"end_ms"`
	Count   int64   `json:"count"`
}

// Second is one second of the run, counted by when requests were due.
type Second struct {
	Second int `json:"second"`
	// Seconds is how much of this second the load lasted: 1, except in the last second
	// of a run that did not last a whole number of seconds (2.5 s ends with 0.5). The
	// counts divided by it are rates.
	Seconds  float64       `json:"seconds"`
	Requests int64         `json:"requests"`
	Status   map[int]int64 `json:"status"`
	Errors   int64         `json:"errors"`
	// Versions counts responses per "service/version".
	Versions map[string]int64 `json:"versions"`
}

// Summary collects the shards; call it after every worker has stopped. The timeline
// ends where Finish said the load stopped or, if it was not called, elapsed after Start.
func (r *Recorder) Summary(elapsed time.Duration) Summary {
	r.collect.Lock()
	defer r.collect.Unlock()
	sum := Summary{ElapsedSeconds: elapsed.Seconds(), Timeline: []Second{}}
	sum.Counts = r.gather(stats.NewHistogram(0, Resolution))
	r.mu.Lock()
	end := r.end
	r.mu.Unlock()
	if end.IsZero() {
		end = r.start.Add(elapsed)
	}
	for i, sec := range r.timeline {
		out := Second{Second: r.base + i, Requests: sec.requests, Errors: sec.errs, Status: map[int]int64{}, Versions: map[string]int64{}}
		maps.Copy(out.Status, sec.codes)
		for h, v := range sec.versions {
			out.Versions[h.Service+"/"+h.Version] += v
		}
		lasted := end.Sub(r.start) - time.Duration(out.Second)*time.Second
		out.Seconds = min(time.Second, max(0, lasted)).Seconds()
		sum.Timeline = append(sum.Timeline, out)
	}
	if elapsed > 0 {
		sum.ThroughputRPS = float64(sum.Requests) / elapsed.Seconds()
	}
	sum.Latency = latency(r.hist)
	return sum
}

func percentiles(h *stats.Histogram) Percentiles {
	l := latency(h)
	return Percentiles{P50MS: l.P50MS, P90MS: l.P90MS, P99MS: l.P99MS}
}

func latency(h *stats.Histogram) Latency {
	l := Latency{Histogram: []Bucket{}}
	if h.Count == 0 {
		return l
	}
	d := h.Export().CalcPercentiles([]float64{50, 90, 99, 99.9})
	ms := func(s float64) float64 { return s * 1000 }
	l.MinMS, l.MeanMS, l.MaxMS = ms(d.Min), ms(d.Avg), ms(d.Max)
	for _, p := range d.Percentiles {
		switch p.Percentile {
		case 50:
			l.P50MS = ms(p.Value)
		case 90:
			l.P90MS = ms(p.Value)
		case 99:
			l.P99MS = ms(p.Value)
		case 99.9:
			l.P999MS = ms(p.Value)
		}
	}
	for _, b := range d.Data {
		l.Histogram = append(l.Histogram, Bucket{StartMS: ms(b.Start), EndMS: ms(b.End), Count: b.Count})
	}
	return l
}
