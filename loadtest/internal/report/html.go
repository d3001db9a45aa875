package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strconv"
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

	var versions []series
	for _, svc := range s.Services() {
		for _, ver := range s.Versions(svc) {
			key := svc + "/" + ver
			sr := series{Name: key, Values: make([]float64, len(s.Timeline))}
			for i, sec := range s.Timeline {
				sr.Values[i] = float64(sec.Versions[key])
			}
			versions = append(versions, sr)
		}
	}
	v.Versions = lineChart("chart-versions", "second of the run", "responses per second", versions)

	var statuses []series
	v.StatusKey = intKeys(s.Status)
	for _, code := range v.StatusKey {
		sr := series{Name: strconv.Itoa(code), Values: make([]float64, len(s.Timeline))}
		for i, sec := range s.Timeline {
			sr.Values[i] = float64(sec.Status[code])
		}
		statuses = append(statuses, sr)
	}
	if len(s.Errors) > 0 {
		sr := series{Name: "errors", Values: make([]float64, len(s.Timeline))}
		for i, sec := range s.Timeline {
			sr.Values[i] = float64(sec.Errors)
		}
		statuses = append(statuses, sr)
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

// WriteHTML renders the report page to path.
func WriteHTML(path string, doc Document) error {
	b, err := RenderHTML(doc)
	if err != nil {
		return err
	}
	return writeFile(path, b)
}
