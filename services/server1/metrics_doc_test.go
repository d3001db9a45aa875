package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
)

// docMetric is one row of the metrics table in docs/workloads.md.
type docMetric struct {
	typ    string
	labels []string // sorted
}

// TestDocumentedMetrics: the metrics table of docs/workloads.md lists exactly the series
// server1 exposes on its admin port, with their types and label names. server1 is the
// workload with every kind of series: it serves, calls an upstream and injects faults.
func TestDocumentedMetrics(t *testing.T) {
	t.Parallel()
	doc := documentedMetrics(t, "../../docs/workloads.md")

	k := kittest.Default(t, "server1")
	server2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"firstName":"Mick"}`)
	}))
	t.Cleanup(server2.Close)
	srv := startWith(t, k, server2.URL)
	// One relayed call that also carries an injected delay: server and client histograms,
	// the attempt counter and the fault counter all get a series.
	if resp, _ := get(t, srv.URL+"/server1/server2", map[string]string{headers.Fault: "server1=delay:1ms"}); resp.StatusCode != 200 {
		t.Fatalf("relayed call: %d", resp.StatusCode)
	}

	// The admin port exactly as workload.Main builds it.
	admin := httptest.NewServer(httpserver.NewAdminRouter(k.Metrics.Handler(), k.Faults.AdminRoutes))
	t.Cleanup(admin.Close)
	resp, body := get(t, admin.URL+"/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	served := map[string]string{} // name → type, from the exposition's "# TYPE" lines
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			served[f[2]] = f[3]
		}
	}

	families, err := k.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exposed := map[string]docMetric{}
	var goSeen, processSeen bool
	for _, mf := range families {
		name := mf.GetName()
		if served[name] == "" {
			t.Errorf("%s is in the registry but not served on /metrics", name)
		}
		switch {
		case strings.HasPrefix(name, "go_"):
			goSeen = true
			continue
		case strings.HasPrefix(name, "process_"):
			processSeen = true
			continue
		}
		var labels []string
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		slices.Sort(labels)
		exposed[name] = docMetric{typ: strings.ToLower(mf.GetType().String()), labels: labels}
	}
	if !goSeen || !processSeen {
		t.Errorf("docs/workloads.md says the Go and process collectors are there: go_* %v, process_* %v", goSeen, processSeen)
	}

	for name, r := range exposed {
		d, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("server1 exposes %s (%s, labels %v); docs/workloads.md's metrics table does not list it", name, r.typ, r.labels)
		case d.typ != r.typ:
			t.Errorf("%s: docs/workloads.md says %s, it is a %s", name, d.typ, r.typ)
		case !slices.Equal(d.labels, r.labels):
			t.Errorf("%s: docs/workloads.md lists labels %v, the series carry %v", name, d.labels, r.labels)
		}
	}
	for name := range doc {
		if _, ok := exposed[name]; !ok {
			t.Errorf("docs/workloads.md lists %s, server1 does not expose it", name)
		}
	}
}

// documentedMetrics reads the table under "### Metrics" in the page at path: rows
// "| `name` | type | `label`, `label` | meaning |".
func documentedMetrics(t *testing.T, path string) map[string]docMetric {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(src), "\n### Metrics\n")
	if !ok {
		t.Fatalf("%s has no '### Metrics' section", path)
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	doc := map[string]docMetric{}
	for line := range strings.SplitSeq(section, "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| `") || len(cells) < 5 {
			continue // prose, the header or the separator row
		}
		var labels []string
		for l := range strings.SplitSeq(cells[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		doc[strings.Trim(strings.TrimSpace(cells[1]), "`")] = docMetric{typ: strings.TrimSpace(cells[2]), labels: labels}
	}
	if len(doc) == 0 {
		t.Fatalf("%s: no rows in the metrics table", path)
	}
	return doc
}
