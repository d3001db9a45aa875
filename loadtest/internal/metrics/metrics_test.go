package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

func TestExporter(t *testing.T) {
	t.Parallel()
	e := New()
	rec := result.NewRecorder(time.Now(), e)
	s := rec.NewShard()
	for range 3 {
		s.Record(time.Now(), 2*time.Millisecond, 200, "", []byte("client/v1@a, server2/v2@b"))
	}
	s.Record(time.Now(), time.Second, 0, result.ErrTimeout, nil)

	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`loadtest_responses_total{code="200"} 3`,
		`loadtest_errors_total{kind="timeout"} 1`,
		`loadtest_hop_responses_total{service="server2",version="v2"} 3`,
		`loadtest_request_duration_seconds_count 4`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
