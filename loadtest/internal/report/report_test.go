package report

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

func sampleDoc(t *testing.T) Document {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := result.NewRecorder(start, nil)
	s := rec.NewShard()
	for i := range 300 {
		path := []byte("client/v1@c, server2/v1@a")
		if i%5 == 0 {
			path = []byte("client/v1@c, server2/v2@b")
		}
		code := 200
		if i%10 == 3 {
			code = 503
		}
		s.Record(start.Add(time.Duration(i)*10*time.Millisecond), time.Duration(1+i%7)*time.Millisecond, code, "", path)
	}
	s.Record(start, time.Second, 0, result.ErrTimeout, nil)
	sum := rec.Summary(3 * time.Second)
	sp, _ := expect.ParseSplit("server2=v1:80,v2:20")
	exp := []expect.Result{expect.CheckSplit(sp, sum.Counts, expect.Defaults), expect.CheckP99(time.Second, sum.Latency.P99MS, sum.Requests)}
	return Document{
		Tool:         ToolName,
		Run:          Run{URL: "http://gw/client/server1", Host: "client.meshdemo", Model: "open", Rate: 100, MaxInFlight: 10, Duration: "3s", Timeout: "1s", Started: start},
		Summary:      sum,
		Expectations: exp,
		Passed:       false,
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	doc := sampleDoc(t)
	path := filepath.Join(t.TempDir(), "sub", "report.json")
	if err := WriteJSON(path, doc); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Document
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Summary, doc.Summary) {
		t.Errorf("summary changed in the round trip:\n got %+v\nwant %+v", back.Summary, doc.Summary)
	}
	if back.Summary.Status[503] != 30 || back.Summary.Hops["server2"]["v2"] != 60 || back.Run.Host != "client.meshdemo" {
		t.Errorf("decoded %+v", back.Summary)
	}
	// The field names are the documented interface.
	for _, key := range []string{`"throughput_rps"`, `"p99_9_ms"`, `"hops"`, `"timeline"`, `"seconds"`, `"expectations"`, `"min_samples"`, `"passed"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestHTMLIsSelfContainedAndCarriesTheData(t *testing.T) {
	t.Parallel()
	doc := sampleDoc(t)
	doc.Run.Headers = []string{"X-Evil: </script><script>alert(1)</script>"}
	b, err := RenderHTML(doc)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	// Nothing is loaded from elsewhere.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=`).FindString(html); m != "" {
		t.Errorf("page references an external resource: %q", m)
	}
	if strings.Contains(html, "<script>alert") {
		t.Error("header value was not escaped")
	}
	// Three charts.
	for _, id := range []string{"chart-latency", "chart-versions", "chart-status"} {
		if !strings.Contains(html, `<svg id="`+id+`"`) {
			t.Errorf("chart %s missing", id)
		}
	}
	// The embedded data is the document.
	re := regexp.MustCompile(`(?s)<script type="application/json" id="` + DataElementID + `">(.*?)</script>`)
	m := re.FindStringSubmatch(html)
	if m == nil {
		t.Fatal("data element missing")
	}
	var back Document
	if err := json.Unmarshal([]byte(m[1]), &back); err != nil {
		t.Fatalf("embedded data: %v", err)
	}
	if !reflect.DeepEqual(back.Summary, doc.Summary) {
		t.Error("embedded summary differs from the document")
	}
	// The charts draw the data: one bar per histogram bucket, one point per second
	// for every series.
	if got := strings.Count(html, "<rect x=") - countLegend(html); got != len(doc.Summary.Latency.Histogram) {
		t.Errorf("%d bars, want %d", got, len(doc.Summary.Latency.Histogram))
	}
	for _, name := range []string{"server2/v1", "server2/v2", "client/v1", "200", "503", "errors"} {
		pm := regexp.MustCompile(`data-series="` + regexp.QuoteMeta(name) + `"[^>]*points="([^"]*)"`).FindStringSubmatch(html)
		if pm == nil {
			t.Errorf("series %s missing", name)
			continue
		}
		if n := len(strings.Fields(pm[1])); n != len(doc.Summary.Timeline) {
			t.Errorf("series %s has %d points, want %d", name, n, len(doc.Summary.Timeline))
		}
	}
	if !strings.Contains(html, `data-label="`) || !strings.Contains(html, "FAIL") {
		t.Error("bars or expectation table missing")
	}
}

func countLegend(html string) int {
	return strings.Count(html, `width="12" height="12"`)
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteText(&buf, sampleDoc(t)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"301 in 3.00s", "p99.9", "503: 30", "timeout: 1", "Hop server2 v1: 240 (80.0%)  v2: 60 (20.0%)", "split server2"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

// TestTimeChartsPlotRates: the time charts divide every second's count by how long
// that second lasted, so the last, partial second of a 2.5 s run shows the same
// 100 req/s as the others, and a last second of a few milliseconds (one request due
// at 3.000 s in a 3 s run) is left out rather than drawn as a spike.
func TestTimeChartsPlotRates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		last     time.Duration // the last request is due at this offset
		finish   time.Duration
		wantSecs int // seconds charted
	}{
		{"2.5 s run", 2490 * time.Millisecond, 2500 * time.Millisecond, 3},
		{"3 s run with a call due at its end", 3000 * time.Millisecond, 3002 * time.Millisecond, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			rec := result.NewRecorder(start, nil)
			s := rec.NewShard()
			for at := time.Duration(0); at <= c.last; at += 10 * time.Millisecond {
				code := 200
				if at%(50*time.Millisecond) == 0 {
					code = 503 // one in five: 20 req/s
				}
				s.Record(start.Add(at), time.Millisecond, code, "", []byte("client/v1@c"))
			}
			rec.Finish(start.Add(c.finish))
			sum := rec.Summary(c.finish + 50*time.Millisecond)
			seconds := charted(sum.Timeline)
			if len(seconds) != c.wantSecs {
				t.Fatalf("%d seconds charted, want %d (timeline %+v)", len(seconds), c.wantSecs, sum.Timeline)
			}
			for _, line := range []struct {
				sr   series
				want float64
			}{
				{perSecond("200", seconds, func(sec result.Second) int64 { return sec.Status[200] }), 80},
				{perSecond("503", seconds, func(sec result.Second) int64 { return sec.Status[503] }), 20},
				{perSecond("client/v1", seconds, func(sec result.Second) int64 { return sec.Versions["client/v1"] }), 100},
			} {
				for i, v := range line.sr.Values {
					if math.Abs(v-line.want) > 1e-6 {
						t.Errorf("%s, second %d: %v per second, want %v", line.sr.Name, i, v, line.want)
					}
				}
			}
			// The page draws those seconds, in both time charts.
			b, err := RenderHTML(Document{Tool: ToolName, Run: Run{Model: "open", Started: start}, Summary: sum})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"200", "503", "client/v1"} {
				pm := regexp.MustCompile(`data-series="` + regexp.QuoteMeta(name) + `"[^>]*points="([^"]*)"`).FindSubmatch(b)
				if pm == nil || len(strings.Fields(string(pm[1]))) != c.wantSecs {
					t.Errorf("series %s: points %q, want %d", name, pm, c.wantSecs)
				}
			}
		})
	}
}
