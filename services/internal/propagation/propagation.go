// Package propagation copies the headers Istio and tracing systems need from each
// inbound request to every outbound call it causes. Which headers travel is the list in
// package headers (exported, so other modules read it too); a workload only adds names
// through PROPAGATE_HEADERS.
//
// Raw copies are always made, so propagation works with trace export off. With
// tracing on, the OpenTelemetry propagators then overwrite the trace headers
// (traceparent, tracestate, b3, x-b3-*) with the current span, which continues the
// trace: same trace id, new span id.
package propagation

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/meshdemo/meshdemo/services/headers"
)

// Propagator knows the full list of names for one workload. Safe for concurrent use.
type Propagator struct {
	names []string // canonical MIME form, deduplicated
}

// New builds the list from headers.Propagated plus extra names.
func New(extra []string) *Propagator {
	seen := map[string]bool{}
	var names []string
	for _, n := range append(headers.Propagated(), extra...) {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		c := textproto.CanonicalMIMEHeaderKey(n)
		if !seen[c] {
			seen[c] = true
			names = append(names, c)
		}
	}
	return &Propagator{names: names}
}

// Names returns the canonical header names this propagator forwards.
func (p *Propagator) Names() []string { return append([]string(nil), p.names...) }

// Carried is the set of propagated values captured from one inbound request.
type Carried struct {
	keys   []string
	values [][]string
}

// Len is the number of captured headers.
func (c Carried) Len() int { return len(c.keys) }

// Get returns the first captured value of a header (canonical or not).
func (c Carried) Get(name string) string {
	name = textproto.CanonicalMIMEHeaderKey(name)
	for i, k := range c.keys {
		if k == name && len(c.values[i]) > 0 {
			return c.values[i][0]
		}
	}
	return ""
}

// Capture copies the listed headers present in h. Values are shared with h, which is
// fine because inbound headers are not modified after the handler starts.
func (p *Propagator) Capture(h http.Header) Carried {
	var c Carried
	for _, n := range p.names {
		if v, ok := h[n]; ok && len(v) > 0 {
			c.keys = append(c.keys, n)
			c.values = append(c.values, v)
		}
	}
	return c
}

// Set overrides or adds one captured header (for example a generated x-request-id).
func (c *Carried) Set(name, value string) {
	name = textproto.CanonicalMIMEHeaderKey(name)
	for i, k := range c.keys {
		if k == name {
			c.values[i] = []string{value}
			return
		}
	}
	c.keys = append(c.keys, name)
	c.values = append(c.values, []string{value})
}

// Apply writes the captured headers into an outbound header map. The value slices
// are shared, capped so that an append on out reallocates instead of writing into
// the inbound request's header; Header.Set replaces a slice, never edits it.
func (c Carried) Apply(out http.Header) {
	for i, k := range c.keys {
		v := c.values[i]
		out[k] = v[:len(v):len(v)]
	}
}

// Each calls fn for every captured header (canonical name, values shared: do not
// modify them); transports other than HTTP (gRPC metadata) write them their own way.
func (c Carried) Each(fn func(name string, values []string)) {
	for i, k := range c.keys {
		fn(k, c.values[i])
	}
}
