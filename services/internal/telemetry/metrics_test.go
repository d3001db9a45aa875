package telemetry

import (
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCachedObserversCountPerSeries: the resolved-child caches must land every
// observation on its own series, also under concurrent first use (run with -race).
func TestCachedObserversCountPerSeries(t *testing.T) {
	t.Parallel()
	m := NewMetrics("server1", "v1")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				m.ObserveServer("/a", "GET", 200, 0.001)
				m.ObserveServer("/a", "GET", 503, 0.001)
				m.ObserveServer("/a", "SEARCH", 200, 0.001)
				m.ObserveClient("server2", 200, 0.002)
				m.ObserveClient("server2", 504, 3)
				m.CountAttempt(7)
			}
		})
	}
	wg.Wait()
	want := map[string]uint64{
		`code="200",method="GET",route="/a"`:    100,
		`code="503",method="GET",route="/a"`:    100,
		`code="200",method="_OTHER",route="/a"`: 100,
		`code="200",upstream="server2"`:         100,
		`code="504",upstream="server2"`:         100,
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "meshdemo_http_") {
			continue
		}
		for _, s := range mf.GetMetric() {
			var parts []string
			for _, l := range s.GetLabel() {
				if l.GetName() != "service" && l.GetName() != "version" {
					parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
				}
			}
			got[strings.Join(parts, ",")] = s.GetHistogram().GetSampleCount()
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d observations, want %d", k, got[k], n)
		}
	}
	if v := testutil.ToFloat64(m.attempts.WithLabelValues("5+")); v != 100 {
		t.Errorf(`attempt="5+" = %v, want 100`, v)
	}
}
