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
	"sort"
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

// Recorder collects the shards of one run.
type Recorder struct {
	start time.Time
	obs   Observer

	mu     sync.Mutex
	shards []*Shard
	end    time.Time // when the load stopped; zero until Finish
}

// NewRecorder starts a recording whose timeline counts seconds from start; obs may be nil.
func NewRecorder(start time.Time, obs Observer) *Recorder {
	return &Recorder{start: start, obs: obs}
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
		start: r.start,
		obs:   r.obs,
		hist:  stats.NewHistogram(0, Resolution),
		codes: map[int]int64{},
		errs:  map[string]int64{},
		hops:  map[Hop]int64{},
		cache: map[string][]Hop{},
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
	hist     *stats.Histogram
	codes    map[int]int64
	errs     map[string]int64
	hops     map[Hop]int64
	noPath   int64
	badPath  int64
	timeline []second
	cache    map[string][]Hop // parsed path headers; responses repeat a handful of values
}

type second struct {
	requests int64
	codes    map[int]int64
	errs     int64
	versions map[Hop]int64
}

const maxCached = 4096

// Record adds one request. sent is when it was due (open model) or sent (closed model),
// code is 0 when no response arrived (errKind then says why), path is the raw value
// of the path header (nil when absent).
func (s *Shard) Record(sent time.Time, latency time.Duration, code int, errKind string, path []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hist.Record(latency.Seconds())
	sec := s.bucket(sent)
	sec.requests++
	var hops []Hop
	if code == 0 {
		s.errs[errKind]++
		sec.errs++
	} else {
		s.codes[code]++
		sec.codes[code]++
		hops = s.parse(path)
		for _, h := range hops {
			s.hops[h]++
			sec.versions[h]++
		}
	}
	if s.obs != nil {
		s.obs.Observe(code, errKind, latency, hops)
	}
}

func (s *Shard) bucket(sent time.Time) *second {
	i := max(0, int(sent.Sub(s.start)/time.Second))
	for len(s.timeline) <= i {
		s.timeline = append(s.timeline, second{codes: map[int]int64{}, versions: map[Hop]int64{}})
	}
	return &s.timeline[i]
}

// parse reads the hops of a path header, first hop per service only (a service that
// shows up twice was called twice by the chain, not served by two versions).
func (s *Shard) parse(path []byte) []Hop {
	path = bytes.TrimSpace(path)
	if len(path) == 0 {
		s.noPath++
		return nil
	}
	if hops, ok := s.cache[string(path)]; ok {
		if hops == nil {
			s.badPath++
		}
		return hops
	}
	parsed, err := pathheader.Parse(string(path))
	var hops []Hop
	if err != nil {
		s.badPath++
	} else {
		hops = make([]Hop, 0, len(parsed))
		for _, h := range parsed {
			if !slices.ContainsFunc(hops, func(x Hop) bool { return x.Service == h.Service }) {
				hops = append(hops, Hop{Service: h.Service, Version: h.Version})
			}
		}
	}
	if len(s.cache) < maxCached {
		s.cache[string(path)] = hops
	}
	return hops
}

// Progress is a running count for the progress line.
type Progress struct {
	Requests int64
	Errors   int64
	Codes    map[int]int64
}

// Progress adds up the shards so far.
func (r *Recorder) Progress() Progress {
	p := Progress{Codes: map[int]int64{}}
	for _, s := range r.snapshotShards() {
		s.mu.Lock()
		p.Requests += s.hist.Count
		for k, v := range s.codes {
			p.Codes[k] += v
		}
		for _, v := range s.errs {
			p.Errors += v
		}
		s.mu.Unlock()
	}
	return p
}

func (r *Recorder) snapshotShards() []*Shard {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.shards)
}

// Summary is what a run measured; it is the "summary" object of the JSON report.
type Summary struct {
	Requests       int64   `json:"requests"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	ThroughputRPS  float64 `json:"throughput_rps"`
	Latency        Latency `json:"latency"`
	// Status counts responses per HTTP status code.
	Status map[int]int64 `json:"status"`
	// Errors counts requests that got no status, per kind (timeout, connect, transport).
	Errors map[string]int64 `json:"errors"`
	// Hops counts, per service named in the path header, the responses per version.
	Hops map[string]map[string]int64 `json:"hops"`
	// PathMissing counts responses without the path header, PathInvalid those whose
	// header did not parse.
	PathMissing int64    `json:"path_missing"`
	PathInvalid int64    `json:"path_invalid"`
	Timeline    []Second `json:"timeline"`
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

// Summary merges the shards; call it after every worker has stopped. The timeline ends
// where Finish said the load stopped or, if it was not called, elapsed after Start.
func (r *Recorder) Summary(elapsed time.Duration) Summary {
	hist := stats.NewHistogram(0, Resolution)
	sum := Summary{
		ElapsedSeconds: elapsed.Seconds(),
		Status:         map[int]int64{},
		Errors:         map[string]int64{},
		Hops:           map[string]map[string]int64{},
		Timeline:       []Second{},
	}
	for _, s := range r.snapshotShards() {
		s.mu.Lock()
		hist.Transfer(s.hist.Clone())
		for k, v := range s.codes {
			sum.Status[k] += v
		}
		for k, v := range s.errs {
			sum.Errors[k] += v
		}
		for h, v := range s.hops {
			if sum.Hops[h.Service] == nil {
				sum.Hops[h.Service] = map[string]int64{}
			}
			sum.Hops[h.Service][h.Version] += v
		}
		sum.PathMissing += s.noPath
		sum.PathInvalid += s.badPath
		for i, sec := range s.timeline {
			for len(sum.Timeline) <= i {
				sum.Timeline = append(sum.Timeline, Second{Second: len(sum.Timeline), Status: map[int]int64{}, Versions: map[string]int64{}})
			}
			out := &sum.Timeline[i]
			out.Requests += sec.requests
			out.Errors += sec.errs
			for k, v := range sec.codes {
				out.Status[k] += v
			}
			for h, v := range sec.versions {
				out.Versions[h.Service+"/"+h.Version] += v
			}
		}
		s.mu.Unlock()
	}
	r.mu.Lock()
	end := r.end
	r.mu.Unlock()
	if end.IsZero() {
		end = r.start.Add(elapsed)
	}
	for i := range sum.Timeline {
		lasted := end.Sub(r.start) - time.Duration(i)*time.Second
		sum.Timeline[i].Seconds = min(time.Second, max(0, lasted)).Seconds()
	}
	sum.Requests = hist.Count
	if elapsed > 0 {
		sum.ThroughputRPS = float64(hist.Count) / elapsed.Seconds()
	}
	sum.Latency = latency(hist)
	return sum
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

// Versions returns the versions seen for a service, sorted, for stable output.
func (s Summary) Versions(service string) []string {
	return slices.Sorted(maps.Keys(s.Hops[service]))
}

// Services returns the services seen in path headers, sorted.
func (s Summary) Services() []string {
	out := slices.Collect(maps.Keys(s.Hops))
	sort.Strings(out)
	return out
}
