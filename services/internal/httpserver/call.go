package httpserver

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/problem"
	prop "github.com/meshdemo/meshdemo/services/internal/propagation"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Call is what a hop learns from an inbound call's headers, whatever the transport
// (HTTP headers, or gRPC metadata as canonical header names).
type Call struct {
	Hop       pathheader.Hop // this hop, with ;attempt=N when Envoy retried
	Attempt   int            // Envoy's x-envoy-attempt-count, 0 when absent
	RequestID string         // x-request-id, generated when absent
	Carried   prop.Carried   // the propagated headers, for every outbound call
}

// Enter is the start of every inbound call on this hop: it captures the propagated
// headers (generating an x-request-id outside a mesh), applies Envoy's
// x-envoy-expected-rq-timeout-ms as the call's deadline and stores what SelfHop and
// Carried read back. cancel is nil when no deadline was added.
func (o *Observer) Enter(ctx context.Context, h http.Header) (_ context.Context, cancel context.CancelFunc, c Call) {
	c.Carried = o.Propagator.Capture(h)
	c.RequestID = c.Carried.Get(HeaderRequestID)
	if c.RequestID == "" { // outside a mesh nobody generated one
		c.RequestID = newRequestID()
		c.Carried.Set(HeaderRequestID, c.RequestID)
	}
	// Envoy tells each hop how long its caller will wait; nobody profits from work
	// after that, so the call (and every outbound call) gets that deadline. The header
	// is absent outside a mesh; Atoi("") would allocate an error each time.
	if v := h.Get(HeaderExpectedTimeout); v != "" {
		if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
			ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		}
	}
	c.Hop = o.Identity
	if a := h.Get(HeaderAttemptCount); a != "" {
		if n, err := strconv.Atoi(a); err == nil && n > 0 && n < 1000 {
			c.Attempt = n
			c.Hop.Attrs = map[string]string{"attempt": strconv.Itoa(n)}
		}
	}
	return problem.WithAnswerer(ctx, &requestInfo{hop: c.Hop, carried: c.Carried}), cancel, c
}
