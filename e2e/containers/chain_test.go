package containers

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// server2Body is server2's answer, relayed byte for byte by server1 and client.
type server2Body struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Service   string `json:"service"`
	Version   string `json:"version"`
	Instance  string `json:"instance"`
}

// checkPath parses the path header and checks it names these workloads, in this order,
// each with its own version and container hostname.
func checkPath(t *testing.T, header http.Header, want ...*workload) {
	t.Helper()
	raw := header.Get(pathheader.Name)
	hops, err := pathheader.Parse(raw)
	if err != nil {
		t.Fatalf("%s %q: %v", pathheader.Name, raw, err)
	}
	if len(hops) != len(want) {
		t.Fatalf("%s %q: %d hops, want %d", pathheader.Name, raw, len(hops), len(want))
	}
	for i, w := range want {
		h := hops[i]
		if h.Service != w.name || h.Version != w.version || h.Instance != w.hostname {
			t.Errorf("hop %d is %s, want %s/%s@%s", i+1, h, w.name, w.version, w.hostname)
		}
	}
}

// TestChain follows GET /client/server1 through three containers that find each other
// by network alias.
func TestChain(t *testing.T) {
	s := need(t)
	client, server1, server2 := s.w["client"], s.w["server1"], s.w["server2"]

	r := get(t, client.public+"/client/server1", nil).expect(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body server2Body
	r.decode(t, &body)
	want := server2Body{FirstName: "Mick", LastName: "Chung", Service: "server2", Version: server2.version, Instance: server2.hostname}
	if body != want {
		t.Errorf("body %+v, want %+v", body, want)
	}
	checkPath(t, r.header, client, server1, server2)

	// server1 relays server2 byte for byte, and so does client: the direct answer of
	// server2 has the same body.
	direct := get(t, server2.public+"/server2/end", nil).expect(t, http.StatusOK)
	if string(direct.body) != string(r.body) {
		t.Errorf("client relayed %s, server2 answers %s", r.body, direct.body)
	}
	checkPath(t, direct.header, server2)

	mid := get(t, server1.public+"/server1/server2", nil).expect(t, http.StatusOK)
	checkPath(t, mid.header, server1, server2)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// checkCoversList fails when the table above and the workloads' list (package
// headers) differ, so a change to one cannot silently skip the other.
func checkCoversList(t *testing.T, h map[string]string) {
	t.Helper()
	want := map[string]bool{}
	for _, n := range headers.Propagated() {
		want[strings.ToLower(n)] = true
		if _, ok := h[strings.ToLower(n)]; !ok {
			t.Errorf("listed header %s is not sent by this test", n)
		}
	}
	for n := range h {
		if !want[n] {
			t.Errorf("test sends %s, which is not in the propagation list", n)
		}
	}
}

// TestHeaderPropagation sends the propagation headers to client and proves from the
// containers' own logs that server1 and server2 received them: each hop logs the
// x-request-id and the trace id it extracted (W3C or B3), with trace export off.
func TestHeaderPropagation(t *testing.T) {
	s := need(t)
	client, server1, server2 := s.w["client"], s.w["server1"], s.w["server2"]

	type tc struct {
		name string
		// header returns the request headers for a trace id; x-request-id is filled in.
		header func(traceID string) map[string]string
	}
	cases := []tc{
		{
			// Every header of the propagation list (services/headers); the
			// trace headers agree on one trace id so that whichever propagator wins, the
			// id is the same.
			name: "every listed header",
			header: func(id string) map[string]string {
				span := id[:16]
				return map[string]string{
					"x-request-id":                "",
					"traceparent":                 "00-" + id + "-" + span + "-01",
					"tracestate":                  "meshdemo=ct",
					"baggage":                     "tenant=ct",
					"b3":                          id + "-" + span + "-1",
					"x-b3-traceid":                id,
					"x-b3-spanid":                 span,
					"x-b3-parentspanid":           span,
					"x-b3-sampled":                "1",
					"x-b3-flags":                  "0",
					"x-ot-span-context":           "ct",
					"x-cloud-trace-context":       id + "/1;o=1",
					"grpc-trace-bin":              "AAA",
					"sw8":                         "1-ct",
					"x-datadog-trace-id":          "1",
					"x-datadog-parent-id":         "2",
					"x-datadog-sampling-priority": "1",
					"end-user":                    "jason",
					"user-agent":                  "meshdemo-containertest/1",
					"cookie":                      "session=ct",
					"canary_id":                   "ct",
					"x-canary":                    "true",
					"x-meshdemo-fault":            "nobody=abort:500", // aimed at no hop: forwarded only
				}
			},
		},
		{
			name: "w3c only",
			header: func(id string) map[string]string {
				return map[string]string{"x-request-id": "", "traceparent": "00-" + id + "-" + id[16:] + "-01"}
			},
		},
		{
			name: "b3 multi only",
			header: func(id string) map[string]string {
				return map[string]string{"x-request-id": "", "x-b3-traceid": id, "x-b3-spanid": id[:16], "x-b3-sampled": "1"}
			},
		},
		{
			name: "b3 single only",
			header: func(id string) map[string]string {
				return map[string]string{"x-request-id": "", "b3": id + "-" + id[:16] + "-1"}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			traceID := randomHex(t, 16)
			requestID := "ct-" + randomHex(t, 8)
			h := c.header(traceID)
			if c.name == "every listed header" {
				checkCoversList(t, h)
			}
			h["x-request-id"] = requestID
			r := get(t, client.public+"/client/server1", h).expect(t, http.StatusOK)
			checkPath(t, r.header, client, server1, server2)
			for _, w := range []*workload{client, server1, server2} {
				rec := waitForLog(t, w.ctr, 10*time.Second, func(m map[string]any) bool {
					return m["msg"] == "request" && m["request_id"] == requestID
				})
				if rec == nil {
					t.Errorf("%s never logged a request with request_id %s", w.name, requestID)
					continue
				}
				if rec["trace_id"] != traceID {
					t.Errorf("%s logged trace_id %v for request %s, want %s (sent by the caller)", w.name, rec["trace_id"], requestID, traceID)
				}
			}
		})
	}

	// Without x-request-id, client makes one up; server2 must log the same one.
	t.Run("generated request id", func(t *testing.T) {
		traceID := randomHex(t, 16)
		get(t, client.public+"/client/server1", map[string]string{"traceparent": "00-" + traceID + "-" + traceID[:16] + "-01"}).expect(t, http.StatusOK)
		byTrace := func(m map[string]any) bool { return m["msg"] == "request" && m["trace_id"] == traceID }
		first := waitForLog(t, client.ctr, 10*time.Second, byTrace)
		last := waitForLog(t, server2.ctr, 10*time.Second, byTrace)
		if first == nil || last == nil {
			t.Fatalf("trace %s missing from logs: client %v, server2 %v", traceID, first, last)
		}
		if id, _ := first["request_id"].(string); id == "" || id != last["request_id"] {
			t.Errorf("client generated request_id %v, server2 logged %v", first["request_id"], last["request_id"])
		}
	})
}

// TestFaultHeaderCrossesContainers aims a fault at the last hop: the directive must
// travel client → server1 → server2 unchanged, and the injected status comes back
// relayed unchanged.
func TestFaultHeaderCrossesContainers(t *testing.T) {
	s := need(t)
	client := s.w["client"]

	r := get(t, client.public+"/client/server1", map[string]string{headers.Fault: "server2=abort:418"})
	r.expect(t, http.StatusTeapot)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Status  int    `json:"status"`
		Service string `json:"service"`
		Type    string `json:"type"`
	}
	r.decode(t, &p)
	if p.Status != http.StatusTeapot || p.Service != "server2" || !strings.HasPrefix(p.Type, "urn:meshdemo:fault:") {
		t.Errorf("problem %+v: want an injected-fault problem, status 418, from service server2", p)
	}

	// A delay aimed at server2 only is felt at client.
	start := time.Now()
	get(t, client.public+"/client/server1", map[string]string{headers.Fault: "server2=delay:1200ms"}).expect(t, http.StatusOK)
	if d := time.Since(start); d < 1200*time.Millisecond {
		t.Errorf("server2=delay:1200ms answered after %s", d)
	}
}
