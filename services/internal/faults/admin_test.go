package faults_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/problem"
)

type adminBody struct {
	Service string         `json:"service"`
	Sick    bool           `json:"sick"`
	Config  map[string]any `json:"config"`
}

// TestAdmin drives the admin endpoints through both mountings (chi and plain) and
// checks that the switch changes what the API middleware answers.
func TestAdmin(t *testing.T) {
	t.Parallel()
	mounts := map[string]func(*faults.Injector) http.Handler{
		"AdminHandler": func(i *faults.Injector) http.Handler { return i.AdminHandler() },
		"AdminRoutes": func(i *faults.Injector) http.Handler {
			r := chi.NewRouter()
			i.AdminRoutes(r)
			return r
		},
	}
	type step struct {
		method, path string
		wantStatus   int
		wantSick     bool // state after the step, and in a 200 body
		wantAllow    string
		apiStatus    int // what the API answers after the step
	}
	steps := []step{
		{method: "GET", path: "/admin/faults", wantStatus: 200, apiStatus: 200},
		{method: "POST", path: "/admin/sick", wantStatus: 200, wantSick: true, apiStatus: 502},
		{method: "POST", path: "/admin/sick", wantStatus: 200, wantSick: true, apiStatus: 502},
		{method: "GET", path: "/admin/faults", wantStatus: 200, wantSick: true, apiStatus: 502},
		{method: "GET", path: "/admin/sick", wantStatus: 405, wantSick: true, wantAllow: "POST", apiStatus: 502},
		{method: "DELETE", path: "/admin/healthy", wantStatus: 405, wantSick: true, wantAllow: "POST", apiStatus: 502},
		{method: "POST", path: "/admin/healthy", wantStatus: 200, wantSick: false, apiStatus: 200},
		{method: "POST", path: "/admin/faults", wantStatus: 405, wantAllow: "GET", apiStatus: 200},
	}
	for name, mount := range mounts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := faults.DefaultConfig()
			c.SickCode, c.Delay, c.Latency = 502, 0, faults.MustParseLatency("p50=1ms")
			var sl sleepLog
			inj := newInjector(t, c, "server1", faults.WithSleep(sl.sleep))
			admin, api := mount(inj), inj.Middleware(okHandler)
			for i, s := range steps {
				rec := httptest.NewRecorder()
				admin.ServeHTTP(rec, httptest.NewRequest(s.method, s.path, nil))
				if rec.Code != s.wantStatus {
					t.Fatalf("step %d %s %s: status %d, want %d (%s)", i, s.method, s.path, rec.Code, s.wantStatus, rec.Body)
				}
				if s.wantStatus == 200 {
					if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
						t.Errorf("step %d: Content-Type %q", i, ct)
					}
					var b adminBody
					if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
						t.Fatalf("step %d: %v in %q", i, err, rec.Body)
					}
					if b.Service != "server1" || b.Sick != s.wantSick {
						t.Errorf("step %d: body %+v, want service server1 sick %v", i, b, s.wantSick)
					}
					if s.path == "/admin/faults" {
						want := map[string]any{"delay": "0s", "latency": "p50=1ms", "error_rate": 0.0, "error_code": 503.0,
							"sick_at_start": false, "sick_code": 502.0, "header_enabled": true, "header": "X-Meshdemo-Fault", "max_delay": "30s"}
						for k, v := range want {
							if b.Config[k] != v {
								t.Errorf("step %d: config[%q] = %v, want %v", i, k, b.Config[k], v)
							}
						}
						if len(b.Config) != len(want) {
							t.Errorf("step %d: config has %d fields, want %d: %v", i, len(b.Config), len(want), b.Config)
						}
					}
				} else {
					d := decodeProblem(t, rec)
					if d.Instance != s.path {
						t.Errorf("step %d: problem %+v", i, d)
					}
					if got := rec.Header().Get("Allow"); got != s.wantAllow {
						t.Errorf("step %d: Allow %q, want %q", i, got, s.wantAllow)
					}
				}
				if inj.Sick() != s.wantSick {
					t.Errorf("step %d: Sick() = %v, want %v", i, inj.Sick(), s.wantSick)
				}
				if got := serve(api, "").Code; got != s.apiStatus {
					t.Errorf("step %d: API answered %d, want %d", i, got, s.apiStatus)
				}
			}
		})
	}
}

func TestAdminHandlerUnknownPath(t *testing.T) {
	t.Parallel()
	inj := newInjector(t, faults.DefaultConfig(), "server1")
	rec := httptest.NewRecorder()
	inj.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/nope", nil))
	if rec.Code != 404 || rec.Header().Get("Content-Type") != problem.ContentType {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// TestSickSwitchConcurrent flips the switch while requests run (meaningful under -race).
func TestSickSwitchConcurrent(t *testing.T) {
	t.Parallel()
	inj := newInjector(t, faults.DefaultConfig(), "server1")
	api, admin := inj.Middleware(okHandler), inj.AdminHandler()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			path := "/admin/sick"
			if i%2 == 1 {
				path = "/admin/healthy"
			}
			admin.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, path, nil))
		}
	}()
	deadline := time.After(10 * time.Second)
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-deadline:
			t.Fatal("switching goroutine did not finish")
		default:
			if c := serve(api, "").Code; c != 200 && c != 503 {
				t.Fatalf("status %d", c)
			}
		}
	}
	if inj.Sick() {
		t.Error("ended sick after an even number of switches ending on healthy")
	}
}
