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
// headers (generating an x-request-id outside a mesh), applies the sooner of Envoy's
// x-envoy-expected-rq-timeout-ms and the caller's X-Meshdemo-Budget-Ms as the call's
// deadline and stores what SelfHop, Carried and Instance read back. path is the inbound
// URL path, or the gRPC method. cancel is nil when no deadline was added.
func (o *Observer) Enter(ctx context.Context, h http.Header, path string) (_ context.Context, cancel context.CancelFunc, c Call) {
	c.Carried = o.Propagator.Capture(h)
	c.RequestID = c.Carried.Get(HeaderRequestID)
	if c.RequestID == "" { // outside a mesh nobody generated one
		c.RequestID = newRequestID()
		c.Carried.Set(HeaderRequestID, c.RequestID)
	}
	// Envoy tells each hop how long its caller will wait (from the route timeout),
	// and the previous meshdemo hop sends the budget it has left; nobody profits
	// from work after the sooner of the two, so the call (and every outbound call)
	// gets that deadline.
	if limit := min(headerMillis(h, HeaderExpectedTimeout), headerMillis(h, HeaderBudget)); limit < noLimit {
		ctx, cancel = context.WithTimeout(ctx, limit)
	}
	c.Hop = o.Identity
	if a := h.Get(HeaderAttemptCount); a != "" {
		if n, err := strconv.Atoi(a); err == nil && n > 0 && n < 1000 {
			c.Attempt = n
			c.Hop.Attrs = map[string]string{"attempt": strconv.Itoa(n)}
		}
	}
	return problem.WithAnswerer(ctx, &requestInfo{hop: c.Hop, carried: c.Carried, path: path}), cancel, c
}

// noLimit is what headerMillis returns for an absent or unusable header.
const noLimit = time.Duration(1<<63 - 1)

// headerMillis reads a positive count of milliseconds; anything else is no limit.
// The headers are often absent (Envoy's outside a mesh, the budget at the front
// door), and ParseInt("") would allocate an error each time, hence the early return.
func headerMillis(h http.Header, name string) time.Duration {
	v := h.Get(name)
	if v == "" {
		return noLimit
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 || ms > int64(noLimit/time.Millisecond) {
		return noLimit
	}
	return time.Duration(ms) * time.Millisecond
}
