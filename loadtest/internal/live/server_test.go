package live

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/engine"
	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
	"github.com/meshdemo/meshdemo/loadtest/internal/fakemesh"
	"github.com/meshdemo/meshdemo/loadtest/internal/report"
)

var base = Spec{
	Engine: engine.Config{MaxInFlight: 100, Timeout: 5 * time.Second},
	Checks: expect.Checks{Settings: expect.Defaults},
}

func newPage(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(ctx, Options{Base: base})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { cancel(); s.Wait(); srv.Close() })
	return s, srv
}

func fake(t *testing.T) (*httptest.Server, *fakemesh.Handler) {
	t.Helper()
	h := fakemesh.New(fakemesh.Config{Seed: 1, Chain: []fakemesh.Hop{{Service: "server2", Weights: map[string]int{"v1": 1}}}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

func post(t *testing.T, url, body string) (int, problem) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p problem
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: Content-Type %q", url, ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatalf("problem body: %v", err)
		}
	}
	return resp.StatusCode, p
}

// TestBadInputChangesNothing: every malformed start request gets 400 with a message
// that names the problem, and no run starts.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	target, mesh := fake(t)
	page, srv := newPage(t)
	ok := func(extra string) string {
		return `{"url":"` + target.URL + `/","rate":10` + extra + `}`
	}
	cases := []struct{ name, body, detail string }{
		{"not JSON", `url=x`, "request body"},
		{"unknown field", ok(`,"rat":5`), `unknown field "rat"`},
		{"malformed URL", `{"url":"http//x/y","rate":10}`, "scheme must be http or https"},
		{"URL without host", `{"url":"http:///y","rate":10}`, "has no host"},
		{"header without colon", ok(`,"headers":["end-user jason"]`), `header "end-user jason"`},
		{"header name not a token", ok(`,"headers":["bad name: x"]`), `header "bad name: x"`},
		{"bad Host", ok(`,"host":"a b"`), "not a valid Host header"},
		{"rate 0", `{"url":"` + target.URL + `","rate":0}`, "rate 0 req/s is out of range"},
		{"rate 1e9", `{"url":"` + target.URL + `","rate":1e9}`, "rate 1e+09 req/s is out of range"},
		{"negative rate", `{"url":"` + target.URL + `","rate":-1}`, "out of range"},
		{"bad duration", ok(`,"duration":"soon"`), `duration "soon"`},
		{"bad expect", ok(`,"expect":["server2=v1"]`), "is not version:weight"},
		{"bad expect-status", ok(`,"expect_status":["503:150"]`), "not in [0, 100]"},
	}
	for _, c := range cases {
		code, p := post(t, srv.URL+"/api/run", c.body)
		if code != http.StatusBadRequest || !strings.Contains(p.Detail, c.detail) || p.Status != code {
			t.Errorf("%s: %d %+v, want 400 with %q", c.name, code, p, c.detail)
		}
	}
	if page.running || mesh.Requests() != 0 || len(page.hub.recent) != 0 {
		t.Errorf("bad input changed something: running %v, fake served %d, %d events", page.running, mesh.Requests(), len(page.hub.recent))
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	if code, p := post(t, srv.URL+"/api/run", `{"url":"http://`+dead+`/","rate":10}`); code != http.StatusBadGateway || !strings.Contains(p.Detail, "unreachable") {
		t.Errorf("unreachable target: %d %+v", code, p)
	}
}

// TestOneRunAtATime: a second start while one runs is a 409 and leaves the first
// alone; stop ends it; a stop with nothing running is a 409 too.
func TestOneRunAtATime(t *testing.T) {
	t.Parallel()
	target, mesh := fake(t)
	page, srv := newPage(t)
	start := `{"url":"` + target.URL + `/","rate":50}`
	if code, p := post(t, srv.URL+"/api/run", start); code != http.StatusAccepted {
		t.Fatalf("start: %d %+v", code, p)
	}
	if code, p := post(t, srv.URL+"/api/run", start); code != http.StatusConflict || !strings.Contains(p.Detail, "already going on") {
		t.Errorf("second start: %d %+v", code, p)
	}
	for deadline := time.Now().Add(5 * time.Second); mesh.Requests() < 10 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := post(t, srv.URL+"/api/stop", ""); code != http.StatusAccepted {
		t.Errorf("stop: %d", code)
	}
	page.Wait()
	if code, p := post(t, srv.URL+"/api/stop", ""); code != http.StatusConflict || p.Detail != "no run is going on" {
		t.Errorf("stop again: %d %+v", code, p)
	}
	if mesh.Requests() < 10 {
		t.Errorf("fake served %d", mesh.Requests())
	}
}

// TestCrossOriginStartRefused: a page from another origin cannot start load through
// the user's browser.
func TestCrossOriginStartRefused(t *testing.T) {
	t.Parallel()
	target, mesh := fake(t)
	_, srv := newPage(t)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/run", strings.NewReader(`{"url":"`+target.URL+`/","rate":10}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || mesh.Requests() != 0 {
		t.Errorf("cross-site start: %d, fake served %d", resp.StatusCode, mesh.Requests())
	}
}

// TestEventStreamWithoutBrowser reads /events as curl -N would: an idle event, then a
// run's start, its seconds with snapshots, and its end with the report's checks.
func TestEventStreamWithoutBrowser(t *testing.T) {
	t.Parallel()
	target, mesh := fake(t)
	page, srv := newPage(t)
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	next := func() Event {
		t.Helper()
		for lines.Scan() {
			if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				var ev Event
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Fatal(err)
				}
				return ev
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return Event{}
	}
	if ev := next(); ev.State != StateIdle {
		t.Fatalf("first event %+v", ev)
	}
	spec, err := page.Spec(Form{URL: target.URL + "/", Rate: 200, Duration: "2s", Expect: []string{"server2=v1:100"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := page.Start(spec, Form{}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.State != StateRunning || ev.Snapshot != nil || ev.Run.Rate != 200 {
		t.Fatalf("start event %+v", ev)
	}
	var seconds int
	for {
		ev := next()
		if ev.State == StateRunning {
			seconds++
			if ev.Snapshot == nil || len(ev.Checks) != 1 {
				t.Fatalf("second %+v", ev)
			}
			continue
		}
		if ev.State != StateFinished || ev.Passed == nil || !*ev.Passed || ev.ThroughputRPS <= 0 {
			t.Fatalf("last event %+v", ev)
		}
		if n := ev.Snapshot.Totals.Hops["server2"]["v1"]; n != int64(mesh.Requests()) || n != ev.Snapshot.Totals.Requests {
			t.Errorf("server2 v1 %d, requests %d, fake served %d", n, ev.Snapshot.Totals.Requests, mesh.Requests())
		}
		break
	}
	if seconds < 1 || seconds > 3 {
		t.Errorf("%d running events in a 2 s run", seconds)
	}
}

// TestSlowConsumerDoesNotSlowTheLoad: a consumer of the snapshots that does not
// return at all does not hold the load back; the run sends everything on schedule.
func TestSlowConsumerDoesNotSlowTheLoad(t *testing.T) {
	t.Parallel()
	target, mesh := fake(t)
	spec := base
	spec.Engine.URL, spec.Engine.Rate, spec.Engine.Requests = target.URL+"/", 400, 400
	release := make(chan struct{})
	done := make(chan report.Document, 1)
	go func() {
		doc, _, err := Execute(context.Background(), spec, nil, 100*time.Millisecond, func(Event) { <-release })
		if err != nil {
			t.Error(err)
		}
		done <- doc
	}()
	start := time.Now()
	for mesh.Requests() < 400 && time.Since(start) < 10*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	close(release)
	doc := <-done
	if mesh.Requests() != 400 || took > 3*time.Second || doc.Summary.Requests != 400 {
		t.Errorf("with a stuck consumer the fake served %d in %v (1 s on schedule); recorded %d", mesh.Requests(), took, doc.Summary.Requests)
	}
}

// TestHubNeverBlocks: a subscriber that never reads does not block Publish; it keeps
// the newest events, and the window for late subscribers stays bounded.
func TestHubNeverBlocks(t *testing.T) {
	t.Parallel()
	h := NewHub(5)
	_, stuck, cancel := h.Subscribe()
	defer cancel()
	done := make(chan struct{})
	go func() {
		for i := range 10000 {
			h.Publish([]byte{byte(i % 256), byte(i / 256)}, i == 0)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	var last []byte
	for n := len(stuck); n > 0; n-- {
		last = <-stuck
	}
	if last == nil || last[0] != byte(9999%256) || last[1] != byte(9999/256) {
		t.Errorf("the stuck subscriber's newest event is %v, want the last published", last)
	}
	recent, _, cancel2 := h.Subscribe()
	defer cancel2()
	if len(recent) != 5 || recent[4][0] != byte(9999%256) {
		t.Errorf("late subscriber gets %d events", len(recent))
	}
	h.Publish([]byte("new run"), true)
	if recent, _, c := h.Subscribe(); len(recent) != 1 {
		t.Errorf("after a new run the window holds %d events", len(recent))
	} else {
		c()
	}
}

// TestReportsBeforeTheLastEvent: the run's reports (OnDone) are written before the
// stream says the run ended, so whoever waits for "finished" can read them at once.
// OnDone takes its time here; no subscriber may see the end meanwhile.
func TestReportsBeforeTheLastEvent(t *testing.T) {
	t.Parallel()
	target, _ := fake(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(ctx, Options{Base: base})
	_, events, stop := s.Hub().Subscribe()
	defer stop()
	ended := make(chan bool, 1)
	s.opts.OnDone = func(report.Document, error) {
		seen := false
		for deadline := time.After(300 * time.Millisecond); ; {
			select {
			case b := <-events:
				var ev Event
				if err := json.Unmarshal(b, &ev); err == nil && ev.State == StateFinished {
					seen = true
				}
				continue
			case <-deadline:
			}
			break
		}
		ended <- seen
	}
	t.Cleanup(func() { cancel(); s.Wait() })
	spec, err := s.Spec(Form{URL: target.URL + "/", Rate: 100, Duration: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(spec, Form{}); err != nil {
		t.Fatal(err)
	}
	select {
	case seen := <-ended:
		if seen {
			t.Error(`the stream said "finished" while the reports were still being written`)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnDone never called")
	}
}
