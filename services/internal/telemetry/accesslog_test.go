package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"
)

// slogLine renders e the way the workloads logged requests before AccessLog existed:
// slog's JSON handler with the identity attached by With.
func slogLine(t testing.TB, e AccessEntry, service, version, instance string) []byte {
	t.Helper()
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("service", service, "version", version, "instance", instance)
	attrs := []slog.Attr{
		slog.String("request_id", e.RequestID), slog.String("method", e.Method), slog.String("route", e.Route),
		slog.String("path", e.Path), slog.Int("status", e.Status),
		slog.Float64("duration_ms", float64(e.Duration.Microseconds())/1000), slog.Int64("bytes", e.Bytes),
	}
	if e.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", e.Attempt))
	}
	if e.TraceID != "" {
		attrs = append(attrs, slog.String("trace_id", e.TraceID), slog.String("span_id", e.SpanID))
	}
	r := slog.NewRecord(e.Time, e.Level, "request", 0)
	r.AddAttrs(attrs...)
	if err := l.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func accessLine(e AccessEntry, service, version, instance string) []byte {
	var buf bytes.Buffer
	NewAccessLog(&buf, slog.LevelDebug, service, version, instance).Log(e)
	return buf.Bytes()
}

// keysAndValues decodes one JSON object line, keeping the key order.
func keysAndValues(t testing.TB, line []byte) ([]string, map[string]any) {
	t.Helper()
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not exactly one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("invalid JSON %q: %v", line, err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	var keys []string
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys, m
}

func sameAsSlog(t testing.TB, e AccessEntry, service, version, instance string) {
	t.Helper()
	want := slogLine(t, e, service, version, instance)
	got := accessLine(e, service, version, instance)
	wk, wm := keysAndValues(t, want)
	gk, gm := keysAndValues(t, got)
	if !reflect.DeepEqual(gk, wk) {
		t.Errorf("keys\n got %v\nwant %v", gk, wk)
	}
	// Times are compared as instants: both use RFC 3339 with nanoseconds.
	if gs, ws := gm["time"], wm["time"]; gs != nil || ws != nil {
		g, _ := gs.(string)
		w, _ := ws.(string)
		gt, err1 := time.Parse(time.RFC3339Nano, g)
		wt, err2 := time.Parse(time.RFC3339Nano, w)
		if err1 != nil || err2 != nil || !gt.Equal(wt) {
			t.Errorf("time %v (%v), want %v (%v)", gs, err1, ws, err2)
		}
	}
	delete(gm, "time")
	delete(wm, "time")
	if !reflect.DeepEqual(gm, wm) {
		t.Errorf("line\n got %s\nwant %s", got, want)
	}
}

// TestAccessLogMatchesSlog: the hand-written line carries the same keys, in the same
// order, with the same decoded values as slog's JSON handler gave for the same request.
func TestAccessLogMatchesSlog(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 10, 46, 28, 123456789, time.UTC)
	for name, e := range map[string]AccessEntry{
		"plain": {Time: at, Level: slog.LevelInfo, RequestID: "5d0f3c1e-7a47-4b6a-9a53-0c6c1d0f3c1e", Method: "GET",
			Route: "/server1/server2", Path: "/server1/server2", Status: 200, Duration: 1234567 * time.Nanosecond, Bytes: 90},
		"warn with trace and attempt": {Time: at.In(time.FixedZone("HKT", 8*3600)), Level: slog.LevelWarn, RequestID: "r",
			Method: "POST", Route: "/api/users", Path: "/api/users", Status: 503, Duration: 30 * time.Second, Bytes: 0,
			Attempt: 3, TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331"},
		"odd strings": {Time: at, Level: slog.LevelDebug, RequestID: "a\"b\\c\nd\te\x00\x1f",
			Method: "BREW", Route: "unmatched", Path: "/用戶/\xff\xfe/<script>&amp;\u2028", Status: 404, Bytes: 1 << 40},
		"zero": {},
	} {
		t.Run(name, func(t *testing.T) { sameAsSlog(t, e, "server1", "v2", "server1-7c9f") })
	}
	t.Run("identity needing escapes", func(t *testing.T) {
		sameAsSlog(t, AccessEntry{Time: at, Level: slog.LevelInfo, Status: 200}, `a"b`, "v\n1", "ünïcode")
	})
}

// FuzzAccessLogStrings: any request id, method or path yields one valid JSON line that
// decodes to what slog wrote.
func FuzzAccessLogStrings(f *testing.F) {
	f.Add("id", "GET", "/a/b", int64(1500))
	f.Add("\"\\", "\x7f", "\xc3\x28\u00e9\U0001F600", int64(-1))
	f.Add("", "", "\u2028\u2029<>&", int64(1<<62))
	f.Fuzz(func(t *testing.T, id, method, path string, d int64) {
		e := AccessEntry{Time: time.Unix(0, d).UTC(), Level: slog.LevelInfo, RequestID: id, Method: method,
			Route: path, Path: path, Status: 200, Duration: time.Duration(d)}
		if y := e.Time.Year(); y < 0 || y >= 10000 {
			e.Time = time.Unix(0, 0).UTC() // slog writes such years as a non-RFC 3339 string
		}
		sameAsSlog(t, e, "s", "v", "i")
	})
}

// TestAccessLogLevel: lines below the configured level are not written.
func TestAccessLogLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	a := NewAccessLog(&buf, slog.LevelWarn, "s", "v", "i")
	a.Log(AccessEntry{Level: slog.LevelInfo, Status: 200})
	if buf.Len() != 0 {
		t.Fatalf("info line written at warn: %q", buf.String())
	}
	a.Log(AccessEntry{Level: slog.LevelWarn, Status: 503})
	if _, m := keysAndValues(t, buf.Bytes()); m["level"] != "WARN" || m["status"] != 503.0 {
		t.Fatalf("warn line %q", buf.String())
	}
	var none *AccessLog // an Observer built without one logs nothing rather than panicking
	none.Log(AccessEntry{Level: slog.LevelError})
}

// TestSharedWriterKeepsLines: the access log and the slog logger writing to one plain
// writer from many goroutines never interleave inside a line (run with -race).
func TestSharedWriterKeepsLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := SyncWriter(&buf)
	logger := NewLogger(w, slog.LevelInfo, "s", "v", "i")
	access := NewAccessLog(w, slog.LevelInfo, "s", "v", "i")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if g%2 == 0 {
					access.Log(AccessEntry{Level: slog.LevelInfo, Path: "/x", Status: 200, Bytes: int64(i)})
				} else {
					logger.Info("other", "i", i)
				}
			}
		})
	}
	wg.Wait()
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("broken line %q: %v", l, err)
		}
	}
	if SyncWriter(io.Discard) != io.Discard {
		t.Error("io.Discard needs no lock")
	}
	bw := NewBatchWriter(io.Discard, time.Hour)
	defer bw.Close()
	if SyncWriter(bw) != io.Writer(bw) {
		t.Error("a BatchWriter is already safe and must not be wrapped")
	}
}

// BenchmarkRequestLine compares the access log with the slog line it replaced; the
// ratio of the two ns/op figures is the point (run with -benchmem).
func BenchmarkRequestLine(b *testing.B) {
	e := AccessEntry{Time: time.Now(), Level: slog.LevelInfo, RequestID: "5d0f3c1e-7a47-4b6a-9a53-0c6c1d0f3c1e",
		Method: "GET", Route: "/server1/server2", Path: "/server1/server2", Status: 200, Duration: 1234567, Bytes: 90,
		TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331"}
	b.Run("accesslog", func(b *testing.B) {
		a := NewAccessLog(io.Discard, slog.LevelInfo, "server1", "v1", "server1-7c9f")
		b.ReportAllocs()
		for b.Loop() {
			a.Log(e)
		}
	})
	b.Run("slog", func(b *testing.B) {
		l := NewLogger(io.Discard, slog.LevelInfo, "server1", "v1", "server1-7c9f")
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(ctx, slog.LevelInfo, "request", slog.String("request_id", e.RequestID), slog.String("method", e.Method),
				slog.String("route", e.Route), slog.String("path", e.Path), slog.Int("status", e.Status),
				slog.Float64("duration_ms", float64(e.Duration.Microseconds())/1000), slog.Int64("bytes", e.Bytes),
				slog.String("trace_id", e.TraceID), slog.String("span_id", e.SpanID))
		}
	})
}
