// Package live runs the load and feeds what it measures, second by second, to whoever
// watches: the progress line on stderr, and with --ui a page in the browser through a
// Server-Sent Events stream. Both read the snapshots of the one counting pipeline
// (result.Recorder); the report at the end is built from the same recorder.
package live

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/engine"
	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
	"github.com/meshdemo/meshdemo/loadtest/internal/report"
	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

// Spec is one run: what to send and what to expect of the answers.
type Spec struct {
	Engine engine.Config
	Checks expect.Checks
}

// States of a run, as the event stream names them.
const (
	StateIdle     = "idle"     // no run yet
	StateRunning  = "running"  // load is being sent
	StateFinished = "finished" // the run ended by itself (duration or request count)
	StateStopped  = "stopped"  // the run was stopped before its end
	StateFailed   = "failed"   // the run could not start or broke
)

// Event is one object of the stream: a run's state and its latest snapshot.
type Event struct {
	Seq   int64       `json:"seq"`
	State string      `json:"state"`
	Run   *report.Run `json:"run,omitempty"`
	// Snapshot is nil before a run's first second.
	Snapshot *result.Snapshot `json:"snapshot,omitempty"`
	// Checks are the run's expectations evaluated on the totals so far (on the whole
	// run in the last event, exactly as in the report).
	Checks []expect.Result `json:"checks,omitempty"`
	// ThroughputRPS and Passed are set on a run's last event.
	ThroughputRPS float64 `json:"throughput_rps,omitempty"`
	Passed        *bool   `json:"passed,omitempty"`
	Error         string  `json:"error,omitempty"`
}

// Execute sends spec's load and records it. Every interval it takes a snapshot and
// hands it to each, from a goroutine of its own: each never runs on the load loop, so
// a slow consumer cannot slow the load. It returns the report document of the run and
// its last event (the final snapshot, with the checks as in the report). obs (may be
// nil) sees every request.
func Execute(ctx context.Context, spec Spec, obs result.Observer, interval time.Duration, each func(Event)) (report.Document, Event, error) {
	started := time.Now()
	run := Describe(spec.Engine, started)
	rec := result.NewRecorder(started, obs)

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				snap := rec.Snapshot(now)
				each(Event{State: StateRunning, Run: &run, Snapshot: &snap, Checks: spec.Checks.Evaluate(snap.Totals, snap.Latency.P99MS)})
			}
		}
	}()
	elapsed, runErr := engine.Run(ctx, spec.Engine, rec)
	close(done)
	wg.Wait()
	if runErr != nil {
		return report.Document{}, Event{}, runErr
	}

	snap := rec.Snapshot(time.Now())
	sum := rec.Summary(elapsed)
	doc := report.Document{Tool: report.ToolName, Run: run, Summary: sum}
	doc.Expectations = spec.Checks.Evaluate(sum.Counts, sum.Latency.P99MS)
	failed := 0
	for _, e := range doc.Expectations {
		if !e.OK {
			failed++
		}
	}
	doc.Passed = failed == 0 && Answered(sum.Counts) > 0
	state := StateFinished
	if ctx.Err() != nil {
		state = StateStopped
	}
	return doc, Event{State: state, Run: &run, Snapshot: &snap, Checks: doc.Expectations, ThroughputRPS: sum.ThroughputRPS, Passed: &doc.Passed}, nil
}

// Answered is the number of requests that got an HTTP status.
func Answered(c result.Counts) int64 {
	var n int64
	for _, v := range c.Status {
		n += v
	}
	return n
}

// Describe is the "run" part of the report: what was sent, how.
func Describe(cfg engine.Config, started time.Time) report.Run {
	r := report.Run{URL: cfg.URL, Host: cfg.Host, Headers: cfg.Headers, Requests: cfg.Requests, Timeout: cfg.Timeout.String(), Started: started}
	switch {
	case cfg.Duration > 0:
		r.Duration = cfg.Duration.String()
	case cfg.Requests == 0:
		r.Duration = "until stopped"
	}
	if cfg.Rate > 0 {
		r.Model, r.Rate, r.MaxInFlight = "open", cfg.Rate, cfg.MaxInFlight
	} else {
		r.Model, r.Concurrency = "closed", cfg.Concurrency
	}
	return r
}

// ProgressLine is the line printed on stderr for a running snapshot.
func ProgressLine(ev Event, cfg engine.Config) string {
	s := ev.Snapshot
	rate := 0.0
	if s.LastSeconds > 0 {
		rate = float64(s.Last.Requests) / s.LastSeconds
	}
	at := time.Duration(s.ElapsedSeconds * float64(time.Second)).Round(time.Second)
	done := fmt.Sprintf("%s/%s, %d requests", at, ev.Run.Duration, s.Totals.Requests)
	if cfg.Requests > 0 {
		done = fmt.Sprintf("%d/%d requests", s.Totals.Requests, cfg.Requests)
	}
	var errs int64
	for _, n := range s.Totals.Errors {
		errs += n
	}
	return fmt.Sprintf("loadtest: %s, %.1f req/s, status %s, errors %d\n", done, rate, report.Codes(s.Totals.Status), errs)
}
