package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshdemo/meshdemo/loadtest/internal/fakemesh"
	"github.com/meshdemo/meshdemo/loadtest/internal/live"
)

// uiProcess is `loadtest --ui 127.0.0.1:0` running in the test through run().
type uiProcess struct {
	base   string // http://127.0.0.1:port
	stdout *syncBuffer
}

func startUI(t *testing.T, args ...string) uiProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--ui", "127.0.0.1:0", "--progress", "0"}, args...), func(string) string { return "" }, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	re := regexp.MustCompile(`live page at (http://\S+)/ `)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return uiProcess{base: m[1], stdout: &stdout}
		}
	}
	t.Fatalf("no address on stderr: %q", stderr.String())
	return uiProcess{}
}

// stream is a subscriber of /events, as curl -N would be.
type stream struct {
	mu     sync.Mutex
	events []live.Event
	notify chan struct{}
}

func subscribe(t *testing.T, base string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	s := &stream{notify: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev live.Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Errorf("event %q: %v", data, err)
				return
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return s
}

func (s *stream) last() live.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) == 0 {
		return live.Event{}
	}
	return s.events[len(s.events)-1]
}

// waitFor returns the first event (from the start of the stream) that satisfies ok.
func (s *stream) waitFor(t *testing.T, what string, timeout time.Duration, ok func(live.Event) bool) live.Event {
	t.Helper()
	return s.waitFrom(t, 0, what, timeout, ok)
}

// next returns the next event to arrive.
func (s *stream) next(t *testing.T, timeout time.Duration) live.Event {
	t.Helper()
	s.mu.Lock()
	n := len(s.events)
	s.mu.Unlock()
	return s.waitFrom(t, n, "a new event", timeout, func(live.Event) bool { return true })
}

func (s *stream) waitFrom(t *testing.T, seen int, what string, timeout time.Duration, ok func(live.Event) bool) live.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		evs := s.events[seen:]
		seen = len(s.events)
		s.mu.Unlock()
		for _, ev := range evs {
			if ok(ev) {
				return ev
			}
		}
		select {
		case <-s.notify:
		case <-deadline:
			t.Fatalf("no event with %s within %v; last: %+v", what, timeout, s.last())
		}
	}
}

// chromiumPath finds Debian's chromium (installed by build/chromium/ensure-chromium.sh).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestLivePageInBrowser drives the live page in headless Chromium as a user would:
// bad input is refused with the server's message, a run starts from the form against
// a fake mesh whose server2 splits 80/20, the page shows what /events carried, the
// split moves to v2 only mid-run and the page follows within two seconds, the split
// check turns from PASS to FAIL, and after Stop the page's numbers equal the stream's
// last event and what the fake really answered.
func TestLivePageInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium not found: build/chromium/ensure-chromium.sh installs it (make test-loadtest runs it)")
	}
	fake, fakeMesh := fakeServer(t, fakemesh.Config{
		Seed: 23, Chain: chain(map[string]int{"v1": 80, "v2": 20}),
		Statuses: map[int]int{200: 90, 503: 7, 429: 3}, RetryEvery: 10,
	})
	ui := startUI(t, "--max-p99", "5s")
	events := subscribe(t, ui.base)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first action starts the browser, which lives as long as that action's
	// context: no timeout there; the test's own deadline bounds the rest.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}

	must := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{textContent:""}).textContent`, sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	waitText := func(sel string, timeout time.Duration, ok func(string) bool) string {
		t.Helper()
		var got string
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = text(sel); ok(got) {
				return got
			}
		}
		t.Fatalf("%s shows %q after %v", sel, got, timeout)
		return ""
	}
	setForm := func(url, rate, headers string) {
		t.Helper()
		fields, _ := json.Marshal(map[string]string{
			"f-url": url, "f-rate": rate, "f-duration": "", "f-headers": headers, "f-expect": "server2=v1:80,v2:20",
		})
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](fmt.Sprintf(
			`(() => { for (const [id, v] of Object.entries(%s)) document.getElementById(id).value = v; return true })()`, fields))); err != nil {
			t.Fatalf("fill the form: %v", err)
		}
		must("click Start", chromedp.Click(chromedp.ID("start")))
	}

	must("open the page", chromedp.Navigate(ui.base+"/"), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)))
	waitText("#state", 5*time.Second, func(s string) bool { return s == "idle" })
	target := fake.URL + "/client/server1"

	// Bad input: each gets the server's message on the page and starts nothing.
	bad := []struct{ url, rate, headers, msg string }{
		{"http//127.0.0.1/x", "100", "", "scheme must be http or https"},
		{target, "100", "end-user jason", `header "end-user jason"`},
		{target, "0", "", "rate 0 req/s is out of range"},
		{target, "1e9", "", "rate 1e+09 req/s is out of range"},
	}
	for _, b := range bad {
		setForm(b.url, b.rate, b.headers)
		waitText("#message", 5*time.Second, func(s string) bool { return strings.Contains(s, b.msg) })
	}
	if st := text("#state"); st != "idle" || fakeMesh.Requests() != 0 {
		t.Fatalf("after bad input: state %q, fake served %d", st, fakeMesh.Requests())
	}

	setForm(target, "400", "end-user: jason\nX-Meshdemo-Fault: none")
	waitText("#state", 5*time.Second, func(s string) bool { return s == "running" })
	must("start again", chromedp.Click(chromedp.ID("start")))
	waitText("#message", 5*time.Second, func(s string) bool { return strings.Contains(s, "already going on") })

	// Before the switch: the split check passes once it has enough responses.
	pass := events.waitFor(t, "a passing split check", 20*time.Second, func(ev live.Event) bool {
		return ev.Snapshot != nil && len(ev.Checks) == 2 && ev.Checks[0].OK
	})
	waitText(`#checks li[data-kind="split"] .verdict`, 3*time.Second, func(s string) bool { return s == "PASS" })
	t.Logf("before the switch: %s", pass.Checks[0].Message)

	// Switch right after an event arrived, so the next one covers about a whole
	// second of the new split (all but the few requests between the snapshot and the
	// switch): the page must show server2 at 95 % v2 or more within two seconds.
	after := events.next(t, 5*time.Second)
	fakeMesh.SetChain(chain(map[string]int{"v2": 1}))
	switched := time.Now()
	shown := waitText(`#numbers tr[data-key="version:server2/v2"] td.last-share`, 2*time.Second, func(s string) bool {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, " %"), 64)
		return err == nil && v >= 95
	})
	t.Logf("page showed server2 at %s v2 %v after the switch", shown, time.Since(switched).Round(time.Millisecond))
	events.waitFor(t, "the split check failing", 10*time.Second, func(ev live.Event) bool {
		return ev.Seq > after.Seq && ev.Snapshot != nil && !ev.Checks[0].OK
	})
	waitText(`#checks li[data-kind="split"] .verdict`, 3*time.Second, func(s string) bool { return s == "FAIL" })

	shot := saveScreenshot(t, bctx)
	t.Logf("screenshot: %s", shot)

	must("stop", chromedp.Click(chromedp.ID("stop")))
	final := events.waitFor(t, "the run's end", 20*time.Second, func(ev live.Event) bool { return ev.State == live.StateStopped })
	waitText("#state", 5*time.Second, func(s string) bool { return s == "stopped" })
	if seq, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.dataset.seq`)); err != nil || seq != strconv.FormatInt(final.Seq, 10) {
		t.Fatalf("page at event %s, stream ended at %d", seq, final.Seq)
	}

	served := fakeMesh.Served()
	tot := final.Snapshot.Totals
	check := func(what string, page string, event, upstream int64) {
		t.Helper()
		if page != strconv.FormatInt(event, 10) || event != upstream {
			t.Errorf("%s: page %s, /events %d, upstream %d", what, page, event, upstream)
		}
	}
	var servedTotal int64
	for code, n := range served.Status {
		servedTotal += n
		check(fmt.Sprintf("status %d", code), text(fmt.Sprintf(`tr[data-key="status:%d"] td.total`, code)), tot.Status[code], n)
	}
	check("requests", text(`tr[data-key="requests"] td.total`), tot.Requests, servedTotal)
	check("retried", text(`tr[data-key="retried"] td.total`), tot.Retried, served.Retried)
	for svc, vers := range served.Hops {
		var all int64
		for _, n := range vers {
			all += n
		}
		for v, n := range vers {
			key := svc + "/" + v
			check(key, text(fmt.Sprintf(`tr[data-key="version:%s"] td.total`, key)), tot.Hops[svc][v], n)
			share := strings.TrimSuffix(text(fmt.Sprintf(`tr[data-key="version:%s"] td.total-share`, key)), " %")
			got, err := strconv.ParseFloat(share, 64)
			if want := 100 * float64(n) / float64(all); err != nil || math.Abs(got-want) > 0.05+1e-9 {
				t.Errorf("%s share: page %q, want %.2f", key, share, want)
			}
		}
	}
	if len(served.Status) < 3 || len(served.Hops["server2"]) != 2 || served.Retried == 0 {
		t.Errorf("the fake did not exercise the page: %+v", served)
	}
	split := final.Checks[0]
	verdict := text(`#checks li[data-kind="split"] .verdict`)
	pShown := strings.TrimPrefix(text(`#checks li[data-kind="split"] .pvalue`), "p = ")
	pPage, err := strconv.ParseFloat(pShown, 64)
	if verdict != "FAIL" || split.OK || split.PValue == nil || err != nil || math.Abs(pPage-*split.PValue) > 0.005**split.PValue {
		t.Errorf("split check: page %s p=%q, /events ok=%v p=%v", verdict, pShown, split.OK, split.PValue)
	}
	if !strings.Contains(ui.stdout.String(), "FAIL  split server2") {
		t.Errorf("no summary on stdout after the run:\n%s", ui.stdout.String())
	}
}

// saveScreenshot writes the whole page as PNG into the test's directory, and to
// $LOADTEST_UI_SCREENSHOT when set (make loadtest-ui-screenshot, for docs/img).
func saveScreenshot(t *testing.T, ctx context.Context) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "loadtest-ui.png")
	if p := os.Getenv("LOADTEST_UI_SCREENSHOT"); p != "" {
		path = p
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUIStartsTheCommandLineRun: `loadtest --ui ADDR URL` starts the run at once;
// its summary goes to stdout and its report to --json, as without --ui, both
// before the stream's last event, which agrees with the report.
func TestUIStartsTheCommandLineRun(t *testing.T) {
	t.Parallel()
	srv, mesh := fakeServer(t, fakemesh.Config{Seed: 2, Chain: chain(map[string]int{"v1": 1})})
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	ui := startUI(t, "--rate", "200", "--requests", "300", "--expect", "server2=v1:100", "--json", jsonPath, srv.URL+"/client/server1")
	events := subscribe(t, ui.base)
	last := events.waitFor(t, "the run's end", 20*time.Second, func(ev live.Event) bool { return ev.State == live.StateFinished })
	// The stream says "finished" only once the report and the summary are out.
	if !strings.Contains(ui.stdout.String(), "PASS  split server2") {
		t.Fatalf("the stream said finished before the summary was on stdout:\n%s", ui.stdout.String())
	}
	doc := readJSON(t, jsonPath)
	if doc.Summary.Requests != 300 || last.Snapshot.Totals.Requests != 300 || mesh.Requests() != 300 || !doc.Passed || !*last.Passed {
		t.Errorf("report %d requests (passed %v), stream %d, fake %d", doc.Summary.Requests, doc.Passed, last.Snapshot.Totals.Requests, mesh.Requests())
	}
	if last.Checks[0].Message != doc.Expectations[0].Message {
		t.Errorf("stream says %q, report %q", last.Checks[0].Message, doc.Expectations[0].Message)
	}
}

// TestUIWarnsOffLoopback: bound to all interfaces, the UI says so.
func TestUIWarnsOffLoopback(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--ui", "0.0.0.0:0"}, func(string) string { return "" }, &stdout, &stderr)
	}()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "warning"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "not on loopback") {
		t.Errorf("stderr: %q", stderr.String())
	}
}
