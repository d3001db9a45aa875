package telemetry

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) snapshot() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.writes
}

func TestBatchWriterKeepsEveryLineInOrder(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := NewBatchWriter(&out, 20*time.Millisecond)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := make([]byte, 0, 64)
			for i := range 2000 {
				line = fmt.Appendf(line[:0], "g%d line %d\n", g, i)
				_, _ = w.Write(line) // the buffer is reused at once, as slog does
			}
		}()
	}
	wg.Wait()
	_ = w.Close()
	got, writes := out.snapshot()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 8000 {
		t.Fatalf("%d lines, want 8000", len(lines))
	}
	next := map[string]int{}
	for _, l := range lines {
		var g string
		var i int
		if _, err := fmt.Sscanf(l, "%s line %d", &g, &i); err != nil || next[g] != i {
			t.Fatalf("line %q out of order or corrupt (want %s %d)", l, g, next[g])
		}
		next[g]++
	}
	if writes >= 8000/10 {
		t.Errorf("%d writes for 8000 lines: not batching", writes)
	}
}

func TestBatchWriterFlushesOnTimer(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := NewBatchWriter(&out, 10*time.Millisecond)
	defer w.Close()
	_, _ = w.Write([]byte("one\n"))
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s, _ := out.snapshot(); s == "one\n" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("a lone line was never flushed")
}
