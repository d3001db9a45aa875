package integration

import (
	"math"
	"regexp"
	"strconv"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// gogcMetric is the runtime's GC percent as the Go collector exposes it.
var gogcMetric = regexp.MustCompile(`(?m)^go_gc_gogc_percent (\S+)$`)

// TestGCPercent: a workload runs with the kit's GOGC unless its environment sets one,
// which then wins ("off" included), read from the process's own /metrics.
func TestGCPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want float64
	}{
		{nil, workload.DefaultGCPercent},
		{map[string]string{"GOGC": "100"}, 100},
		// runtime/metrics reports "off" as the largest uint64.
		{map[string]string{"GOGC": "off"}, math.MaxUint64},
	} {
		p := start(t, "server2", tc.env)
		r := call(t, "GET", p.Admin+"/metrics", nil, "")
		m := gogcMetric.FindSubmatch(r.body)
		if r.code != 200 || m == nil {
			t.Fatalf("GOGC=%q: /metrics %d without go_gc_gogc_percent", tc.env["GOGC"], r.code)
		}
		if got, err := strconv.ParseFloat(string(m[1]), 64); err != nil || got != tc.want {
			t.Errorf("GOGC=%q: go_gc_gogc_percent %s, want %g", tc.env["GOGC"], m[1], tc.want)
		}
	}
}
