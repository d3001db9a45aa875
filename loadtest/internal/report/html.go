package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strconv"

	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Parse(pageSource))

// DataElementID is the id of the <script type="application/json"> element that holds
// the whole Document, so the page's numbers can be read back by a program.
const DataElementID = "loadtest-data"

type view struct {
	Doc       Document
	DataID    string
	Data      template.JS
	Latency   template.HTML
	Versions  template.HTML
	Statuses  template.HTML
	StatusKey []int
	ErrorKey  []string
}

// RenderHTML renders the self-contained report page.
func RenderHTML(doc Document) ([]byte, error) {
	data, err := json.Marshal(doc) // escapes <, > and & so it cannot end the script element
	if err != nil {
		return nil, err
	}
	s := doc.Summary
	v := view{Doc: doc, DataID: DataElementID, Data: template.JS(data)} //nolint:gosec // JSON with HTML-escaped characters

	labels := make([]string, len(s.Latency.Histogram))
	counts := make([]float64, len(s.Latency.Histogram))
	for i, bk := range s.Latency.Histogram {
		labels[i] = strconv.FormatFloat(bk.EndMS, 'g', 3, 64)
		counts[i] = float64(bk.Count)
	}
	v.Latency = barChart("chart-latency", "latency, upper bucket edge (ms)", "requests", labels, counts)

	seconds := charted(s.Timeline)
	var versions []series
	for _, svc := range s.Services() {
		for _, ver := range s.Versions(svc) {
			key := svc + "/" + ver
			versions = append(versions, perSecond(key, seconds, func(sec result.Second) int64 { return sec.Versions[key] }))
		}
	}
	v.Versions = lineChart("chart-versions", "second of the run", "responses per second", versions)

	var statuses []series
	v.StatusKey = intKeys(s.Status)
	for _, code := range v.StatusKey {
		statuses = append(statuses, perSecond(strconv.Itoa(code), seconds, func(sec result.Second) int64 { return sec.Status[code] }))
	}
	if len(s.Errors) > 0 {
		statuses = append(statuses, perSecond("errors", seconds, func(sec result.Second) int64 { return sec.Errors }))
	}
	v.Statuses = lineChart("chart-status", "second of the run", "responses per second", statuses)
	for k := range s.Errors {
		v.ErrorKey = append(v.ErrorKey, k)
	}
	slices.Sort(v.ErrorKey)

	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("rendering HTML report: %w", err)
	}
	return buf.Bytes(), nil
}

// minSpan is the shortest last second the time charts plot. A run's last second is
// usually partial, and its count is divided by its length to stay a rate; but a
// sliver of a few milliseconds holds one or two requests (fortio's open schedule puts
// its last call exactly at the end of the duration, so a 3 s run has one request due
// at 3.00x s), and one request in 2 ms would plot as 500 req/s.
const minSpan = 0.1

// charted returns the seconds the time charts plot: all but a last second shorter
// than minSpan. Its requests are still in the totals and in the JSON timeline.
func charted(tl []result.Second) []result.Second {
	if n := len(tl); n > 0 && tl[n-1].Seconds < minSpan {
		return tl[:n-1]
	}
	return tl
}

// perSecond is one line of a time chart: the count in every second divided by the
// part of that second the run lasted, so that a partial last second shows the rate
// it ran at instead of a drop.
func perSecond(name string, seconds []result.Second, count func(result.Second) int64) series {
	sr := series{Name: name, Values: make([]float64, len(seconds))}
	for i, sec := range seconds {
		sr.Values[i] = float64(count(sec)) / sec.Seconds
	}
	return sr
}

// WriteHTML renders the report page to path.
func WriteHTML(path string, doc Document) error {
	b, err := RenderHTML(doc)
	if err != nil {
		return err
	}
	return writeFile(path, b)
}
