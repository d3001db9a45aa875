package httpclient

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// The three steps of Relay, each on its own: what request builds, how send tells its
// failures apart, what write lets through. The whole relay is tested through a real hop
// in httpclient_test.go.

func newRelay(t *testing.T, base string, w http.ResponseWriter, in *http.Request) relay {
	t.Helper()
	u, err := New(Options{Name: "server2", BaseURL: base, UserAgent: "meshdemo-server1"})
	if err != nil {
		t.Fatal(err)
	}
	u = u.PassHeaders([]string{"if-match"}, []string{"etag"})
	return relay{u: u, w: w, in: in, self: pathheader.Hop{Service: "server1", Version: "v1", Instance: "a"},
		lim: Limit{D: 1500 * time.Microsecond}, trace: &callTrace{}}
}

func TestRequest(t *testing.T) {
	t.Parallel()
	in := httptest.NewRequest(http.MethodPut, "/client/users/7", nil)
	in.Header.Set("If-Match", `"v3"`)
	in.Header.Set("Authorization", "secret")
	tests := []struct {
		name                   string
		call                   Call
		wantRawPath, wantQuery string
		wantCode               int
		wantErr, wantCType     string
	}{
		{name: "escaped path and query", call: Call{Method: http.MethodGet, Path: "/api/users/a%2Fb?limit=2&after=x"},
			wantRawPath: "/base/api/users/a%2Fb", wantQuery: "limit=2&after=x"},
		{name: "body's content type", call: Call{Method: http.MethodPut, Path: "/api/users/7", Body: strings.NewReader("{}"), ContentType: "application/json"},
			wantRawPath: "/base/api/users/7", wantCType: "application/json"},
		{name: "bad escape", call: Call{Method: http.MethodGet, Path: "/api/users/%zz"}, wantCode: http.StatusBadRequest, wantErr: `bad path "/api/users/%zz"`},
		{name: "bad method", call: Call{Method: "GET USERS", Path: "/api/users"}, wantCode: http.StatusInternalServerError, wantErr: "building request to server2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := newRelay(t, "http://server2.example/base/", nil, in)
			out, code, err := x.request(context.Background(), tt.call)
			if tt.wantErr != "" {
				if err == nil || code != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %d %v, want %d %q", code, err, tt.wantCode, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.URL.Host != "server2.example" || out.URL.EscapedPath() != tt.wantRawPath || out.URL.RawQuery != tt.wantQuery {
				t.Errorf("URL %s, want path %s query %q", out.URL, tt.wantRawPath, tt.wantQuery)
			}
			want := http.Header{
				"If-Match":              {`"v3"`},             // passed by name
				"User-Agent":            {"meshdemo-server1"}, // none inbound to carry
				httpserver.HeaderBudget: {"2"},                // 1.5 ms rounded up
			}
			if tt.wantCType != "" {
				want["Content-Type"] = []string{tt.wantCType}
			}
			if !equalHeader(out.Header, want) {
				t.Errorf("header %v, want %v (Authorization never passes)", out.Header, want)
			}
		})
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if strings.Join(a[k], "\n") != strings.Join(v, "\n") {
			return false
		}
	}
	return true
}

// roundTrip is a transport written as a function.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSend(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + closed.Addr().String()
	closed.Close()
	tests := []struct {
		name         string
		base         string
		transport    roundTrip     // nil: the tuned default
		timeout      time.Duration // 0: 10 s
		wantErr      error         // errBodyTooBig, or what the *callError wraps
		wantAnswered bool
	}{
		{name: "answer", base: "http://up", transport: func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 201, Header: http.Header{}, Body: bodyOf("created")}, nil
		}},
		{name: "body over MaxBody", base: "http://up", transport: func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: bodyOf(strings.Repeat("x", MaxBody+1))}, nil
		}, wantErr: errBodyTooBig},
		{name: "unreachable", base: unreachable, wantErr: syscall.ECONNREFUSED},
		{name: "answer after the deadline", base: "http://up", timeout: 20 * time.Millisecond,
			transport: func(r *http.Request) (*http.Response, error) {
				<-r.Context().Done() // answers, but too late
				return &http.Response{StatusCode: 200, Header: http.Header{}, Body: bodyOf("late")}, nil
			}, wantErr: context.DeadlineExceeded, wantAnswered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := newRelay(t, tt.base, nil, httptest.NewRequest(http.MethodGet, "/", nil))
			if tt.transport != nil {
				x.u.opts.Transport = tt.transport
			}
			if tt.timeout == 0 {
				tt.timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout) // as Relay's always has
			defer cancel()
			out, _, err := x.request(ctx, Call{Method: http.MethodGet, Path: "/end"})
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			resp, err := x.send(out, &body)
			var ce *callError
			switch {
			case tt.wantErr == nil:
				if err != nil || resp.StatusCode != 201 || body.String() != "created" {
					t.Fatalf("%v %v %q", resp, err, body.String())
				}
			case tt.wantErr == errBodyTooBig:
				if err != errBodyTooBig {
					t.Fatalf("%v, want errBodyTooBig", err)
				}
			case !errors.As(err, &ce) || !errors.Is(err, tt.wantErr) || ce.answered != tt.wantAnswered:
				t.Fatalf("%#v, want a *callError of %v, answered=%v", err, tt.wantErr, tt.wantAnswered)
			}
		})
	}
}

func bodyOf(s string) *readCloser { return &readCloser{Reader: strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (*readCloser) Close() error { return nil }

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ctype, wantCType string
	}{
		{name: "JSON", ctype: "application/json; charset=utf-8", wantCType: "application/json"},
		{name: "not JSON is relayed as JSON", ctype: "text/html", wantCType: "application/json"},
		{name: "a problem stays one", ctype: problem.ContentType, wantCType: problem.ContentType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			x := newRelay(t, "http://up", rec, httptest.NewRequest(http.MethodGet, "/", nil))
			resp := &http.Response{StatusCode: 409, Header: http.Header{
				"Content-Type":      {tt.ctype},
				pathheader.Name:     {"server2/v1@b"},
				"Etag":              {`"v4"`},
				"Connection":        {"close"},
				"Transfer-Encoding": {"chunked"},
				"Content-Length":    {"99"},
				"X-Other":           {"1"},
			}}
			x.write(resp, []byte(`{"a":1}`))
			want := http.Header{
				"Content-Type":   {tt.wantCType},
				"Content-Length": {"7"},
				"Etag":           {`"v4"`},
				pathheader.Name:  {"server1/v1@a, server2/v1@b"},
			}
			if rec.Code != 409 || rec.Body.String() != `{"a":1}` || !equalHeader(rec.Header(), want) {
				t.Errorf("%d %q %v, want 409 and %v", rec.Code, rec.Body, rec.Header(), want)
			}
		})
	}
}
