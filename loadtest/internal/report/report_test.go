package report

import (
	"bytes"
	"encoding/json"
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
	exp := []expect.Result{expect.CheckSplit(sp, sum, expect.Defaults), expect.CheckP99(time.Second, sum)}
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
	for _, key := range []string{`"throughput_rps"`, `"p99_9_ms"`, `"hops"`, `"timeline"`, `"expectations"`, `"min_samples"`, `"passed"`} {
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
