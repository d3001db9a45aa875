package telemetry

import (
	"io"
	"sync"
	"time"
)

// BatchWriter collects log lines and writes them in batches: every interval, when
// the buffer passes 32 KiB, and on Close. Under load this turns one write syscall per
// access-log line into one per batch, the largest logging cost on a busy hop. A crash
// loses at most one interval of lines; a normal shutdown loses none.
type BatchWriter struct {
	mu   sync.Mutex
	out  io.Writer
	buf  []byte
	stop chan struct{}
	done chan struct{}
}

const batchFlushSize = 32 << 10

// NewBatchWriter starts the flushing goroutine; Close stops it.
func NewBatchWriter(out io.Writer, interval time.Duration) *BatchWriter {
	b := &BatchWriter{out: out, buf: make([]byte, 0, 2*batchFlushSize), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

// Write copies p; the caller may reuse it at once.
func (b *BatchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchFlushSize {
		b.flushLocked()
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (b *BatchWriter) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *BatchWriter) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.out.Write(b.buf) // stdout failing is nothing a logger can report
	b.buf = b.buf[:0]
}

// Close stops the goroutine and flushes the rest. It is safe to call once.
func (b *BatchWriter) Close() error {
	close(b.stop)
	<-b.done
	b.Flush()
	return nil
}
