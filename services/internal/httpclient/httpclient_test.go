package httpclient_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	"github.com/meshdemo/meshdemo/services/internal/nettest"
)

// hop starts server1's shape of hop (kit router, faults, Relay) in front of upstreamURL.
func hop(t *testing.T, upstreamURL string, timeout time.Duration) *httptest.Server {
	t.Helper()
	c := kittest.Common("server1")
	c.UpstreamTimeout = timeout
	k := kittest.Kit(t, c, kittest.Default(t, "x").Faults.Config(), nil)
	u, err := k.Upstream("server2", upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	r := k.Router()
	r.With(k.Faults.Middleware).Get("/server1/server2", func(w http.ResponseWriter, r *http.Request) {
		u.Relay(w, r, httpclient.Call{Method: http.MethodGet, Path: "/server2/end"})
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

type problemBody struct {
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Service  string `json:"service"`
	Upstream string `json:"upstream"`
}

func get(t *testing.T, url string, hdr map[string]string) (int, problemBody, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var p problemBody
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%d body %q: %v", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, p, b
}

// TestBudgetSentOn: every outbound call carries the time it has left, which is the
// hop's own timeout or the inbound request's remaining time less the margin,
// whichever is smaller.
func TestBudgetSentOn(t *testing.T) {
	t.Parallel()
	up, got := budgetUpstream(t)
	srv := hop(t, up.URL, 2*time.Second)
	margin := httpclient.BudgetMargin.Milliseconds()
	for _, tc := range []struct {
		name     string
		hdr      map[string]string
		min, max int64 // milliseconds, inclusive
	}{
		{"no inbound deadline: the hop's own timeout", nil, 1900, 2000},
		{"inbound budget less the margin", map[string]string{httpserver.HeaderBudget: "1000"}, 800, 1000 - margin},
		{"Envoy's expected timeout counts the same", map[string]string{httpserver.HeaderExpectedTimeout: "1000"}, 800, 1000 - margin},
		{"the smaller of the two", map[string]string{httpserver.HeaderBudget: "600", httpserver.HeaderExpectedTimeout: "1000"}, 400, 600 - margin},
		{"a budget above the hop's timeout does not extend it", map[string]string{httpserver.HeaderBudget: "60000"}, 1900, 2000},
		{"garbage is ignored", map[string]string{httpserver.HeaderBudget: "soon"}, 1900, 2000},
		{"zero is ignored", map[string]string{httpserver.HeaderBudget: "0"}, 1900, 2000},
	} {
		code, _, body := get(t, srv.URL+"/server1/server2", tc.hdr)
		if code != 200 {
			t.Fatalf("%s: %d %s", tc.name, code, body)
		}
		v := <-got
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < tc.min || ms > tc.max {
			t.Errorf("%s: sent %s=%q, want %d..%d", tc.name, httpserver.HeaderBudget, v, tc.min, tc.max)
		}
	}
}

// TestBudgetRoundsUp pins the budget header's value: the call's limit in whole
// milliseconds, rounded up (the upstream's deadline then never comes before this
// call's). Without an inbound deadline the limit is exactly the hop's timeout.
func TestBudgetRoundsUp(t *testing.T) {
	t.Parallel()
	up, got := budgetUpstream(t)
	for _, tc := range []struct {
		timeout time.Duration
		want    string
	}{
		{1234 * time.Millisecond, "1234"},
		{1234*time.Millisecond + time.Nanosecond, "1235"},
		{1234*time.Millisecond + 999*time.Microsecond, "1235"},
		{2*time.Second - time.Nanosecond, "2000"},
	} {
		srv := hop(t, up.URL, tc.timeout)
		if code, _, body := get(t, srv.URL+"/server1/server2", nil); code != 200 {
			t.Fatalf("%s: %d %s", tc.timeout, code, body)
		}
		if v := <-got; v != tc.want {
			t.Errorf("timeout %s: sent %s=%q, want %q", tc.timeout, httpserver.HeaderBudget, v, tc.want)
		}
	}
}

// TestSlowUpstreamNamedWithinBudget: with the caller's budget shorter than the hop's
// own timeout, the hop still times out first and answers a 504 naming its upstream
// before the caller's deadline passes.
func TestSlowUpstreamNamedWithinBudget(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(up.Close)
	srv := hop(t, up.URL, 2*time.Second)
	start := time.Now()
	code, p, body := get(t, srv.URL+"/server1/server2", map[string]string{httpserver.HeaderBudget: "500"})
	el := time.Since(start)
	if code != 504 || p.Service != "server1" || p.Upstream != "server2" {
		t.Fatalf("%d %s", code, body)
	}
	// The detail says which limit ran out: about 400ms, from the caller's budget.
	var ms int
	if _, err := fmt.Sscanf(p.Detail, "upstream server2 did not answer within %dms (the time its caller had left, less a 100ms margin)", &ms); err != nil ||
		ms > 400 || ms < 300 {
		t.Fatalf("detail %q: want about 400ms from the caller's budget (%v)", p.Detail, err)
	}
	if el >= 2*time.Second {
		t.Errorf("504 after %s: the hop's own 2s timeout ran out, not the caller's budget", el)
	}
}

// TestNoBudgetLeft: a caller with less time left than the margin gets its 504 at
// once; the upstream is not called.
func TestNoBudgetLeft(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(up.Close)
	srv := hop(t, up.URL, 2*time.Second)
	code, p, body := get(t, srv.URL+"/server1/server2", map[string]string{httpserver.HeaderBudget: strconv.FormatInt(httpclient.BudgetMargin.Milliseconds()/2, 10)})
	if code != 504 || p.Upstream != "server2" || calls.Load() != 0 {
		t.Fatalf("%d %s; upstream called %d times", code, body, calls.Load())
	}
}

// rawUpstream answers every connection with the bytes reply, after reading the
// request head, then closes it.
func rawUpstream(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, reply)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestBrokenUpstreamAnswers: an upstream that answered but broke HTTP is a 502 that
// says so, not "unreachable"; one that nobody listens on is still unreachable.
func TestBrokenUpstreamAnswers(t *testing.T) {
	t.Parallel()
	closedURL := nettest.RefusedURL(t)
	for _, tc := range []struct {
		name, url, want string
	}{
		{"garbage status line", rawUpstream(t, "garbage\r\n\r\n"), "bad response"},
		{"malformed status code", rawUpstream(t, "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}"), "bad response"},
		{"truncated body", rawUpstream(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"short\""), "bad response"},
		{"truncated chunked body", rawUpstream(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"sh"), "bad response"},
		{"nobody listening", closedURL, "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := hop(t, tc.url, 2*time.Second)
			code, p, body := get(t, srv.URL+"/server1/server2", nil)
			if code != 502 || p.Upstream != "server2" || p.Service != "server1" || !strings.Contains(p.Detail, tc.want) {
				t.Fatalf("%d %s; want 502 saying %q", code, body, tc.want)
			}
		})
	}
}

// lateTransport answers after delay whatever the context says: the moment when a
// response has arrived but the call's timer has not been noticed yet, which under
// load is how the upstream's own deadline 504 (due a hair after this hop's) slips in.
type lateTransport struct{ delay time.Duration }

func (lt lateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	time.Sleep(lt.delay)
	body := `{"type":"urn:meshdemo:fault:deadline-exceeded","status":504,"service":"server2"}`
	return &http.Response{StatusCode: 504, Header: http.Header{"Content-Type": {"application/problem+json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

// TestLateAnswerIsThisHopsTimeout: an answer that completes after the call's
// deadline is not relayed; the hop answers its own 504 naming the upstream, so the
// hop that gave up first is always the one the caller hears from.
func TestLateAnswerIsThisHopsTimeout(t *testing.T) {
	t.Parallel()
	k := kittest.Default(t, "server1")
	u, err := httpclient.New(httpclient.Options{
		Name: "server2", BaseURL: "http://server2.invalid", Timeout: 100 * time.Millisecond,
		Metrics: k.Metrics, Logger: k.Logger, Tracer: k.Tracing.Provider.Tracer("test"), TextMap: k.Tracing.Propagator,
		Transport: lateTransport{delay: 150 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := k.Router()
	r.Get("/server1/server2", func(w http.ResponseWriter, r *http.Request) {
		u.Relay(w, r, httpclient.Call{Method: http.MethodGet, Path: "/server2/end"})
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	code, p, body := get(t, srv.URL+"/server1/server2", nil)
	if code != 504 || p.Service != "server1" || p.Upstream != "server2" || !strings.Contains(p.Detail, "did not answer within 100ms") {
		t.Fatalf("%d %s; want server1's own 504 naming server2", code, body)
	}
}

// budgetUpstream is an upstream that answers {} and hands over the budget header each
// call carried.
func budgetUpstream(t *testing.T) (*httptest.Server, <-chan string) {
	t.Helper()
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(httpserver.HeaderBudget)
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(up.Close)
	return up, got
}
