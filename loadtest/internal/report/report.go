// Package report writes what a run found: a JSON document for machines, a text
// summary for the terminal, and a self-contained HTML page (inline SVG charts, no
// scripts or styles from anywhere else) for people.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

// Document is the whole report; its JSON form is the --json file.
type Document struct {
	Tool         string          `json:"tool"`
	Run          Run             `json:"run"`
	Summary      result.Summary  `json:"summary"`
	Expectations []expect.Result `json:"expectations"`
	Passed       bool            `json:"passed"`
}

// Run records how the load was generated.
type Run struct {
	URL         string    `json:"url"`
	Host        string    `json:"host,omitempty"`
	Headers     []string  `json:"headers,omitempty"`
	Model       string    `json:"model"` // open or closed
	Rate        float64   `json:"rate,omitempty"`
	MaxInFlight int       `json:"max_in_flight,omitempty"`
	Concurrency int       `json:"concurrency,omitempty"`
	Duration    string    `json:"duration,omitempty"`
	Requests    int64     `json:"requests,omitempty"`
	Timeout     string    `json:"timeout"`
	Started     time.Time `json:"started"`
}

// ToolName identifies the document's producer.
const ToolName = "meshdemo-loadtest"

// WriteJSON writes the document to path, creating parent directories.
func WriteJSON(path string, doc Document) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

func writeFile(path string, b []byte) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	// Write beside the target and rename: a reader sees the old file or the whole
	// new one, never a half-written report.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("writing report %s: %w", path, werr)
	}
	return nil
}

// WriteText prints the summary a person reads at the end of a run.
func WriteText(w io.Writer, doc Document) error {
	s := doc.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "Target      %s", doc.Run.URL)
	if doc.Run.Host != "" {
		fmt.Fprintf(&b, " (Host: %s)", doc.Run.Host)
	}
	b.WriteString("\n")
	if doc.Run.Model == "open" {
		fmt.Fprintf(&b, "Load        open model, %g req/s (max %d in flight)\n", doc.Run.Rate, doc.Run.MaxInFlight)
	} else {
		fmt.Fprintf(&b, "Load        closed model, %d connections\n", doc.Run.Concurrency)
	}
	fmt.Fprintf(&b, "Requests    %d in %.2fs = %.1f req/s\n", s.Requests, s.ElapsedSeconds, s.ThroughputRPS)
	l := s.Latency
	fmt.Fprintf(&b, "Latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", ms(l.P50MS), ms(l.P90MS), ms(l.P99MS), ms(l.P999MS), ms(l.MaxMS))
	fmt.Fprintf(&b, "Status      %s\n", counts(intKeys(s.Status), s.Status))
	if len(s.Errors) > 0 {
		fmt.Fprintf(&b, "Errors      %s\n", counts(slices.Sorted(maps.Keys(s.Errors)), s.Errors))
	}
	for _, svc := range s.Services() {
		fmt.Fprintf(&b, "Hop %-8s%s\n", svc, counts(s.Versions(svc), s.Hops[svc]))
		inst := s.Instances[svc]
		fmt.Fprintf(&b, "  instances %s\n", counts(slices.Sorted(maps.Keys(inst)), inst))
	}
	if s.Retried > 0 {
		var per []string
		for _, svc := range slices.Sorted(maps.Keys(s.RetriedHops)) {
			per = append(per, fmt.Sprintf("%s %d", svc, s.RetriedHops[svc]))
		}
		fmt.Fprintf(&b, "Retried     %d of %d responses (%.1f%%) reached a hop by a retry: %s\n", s.Retried, s.Requests,
			100*float64(s.Retried)/float64(s.Requests), strings.Join(per, ", "))
	}
	if s.PathMissing > 0 || s.PathInvalid > 0 {
		fmt.Fprintf(&b, "Path header missing on %d, unparsable on %d responses\n", s.PathMissing, s.PathInvalid)
	}
	for _, e := range doc.Expectations {
		mark := "PASS"
		if !e.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %s %s: expected %s, observed %s: %s\n", mark, e.Kind, e.Subject, e.Expected, e.Observed, e.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(v float64) string {
	return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
}

func counts[K comparable](keys []K, m map[K]int64) string {
	var total int64
	for _, v := range m {
		total += v
	}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%v: %d (%.1f%%)", k, m[k], 100*float64(m[k])/float64(max(total, 1))))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "  ")
}

// Codes is a status count as the progress line prints it: "200:517 503:483".
func Codes(m map[int]int64) string {
	parts := make([]string, 0, len(m))
	for _, c := range intKeys(m) {
		parts = append(parts, fmt.Sprintf("%d:%d", c, m[c]))
	}
	return strings.Join(parts, " ")
}

func intKeys(m map[int]int64) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
