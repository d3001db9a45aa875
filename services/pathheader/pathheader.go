// Package pathheader defines the X-Meshdemo-Path response header: the hops a request
// took through the chain, in call order (the first workload called comes first).
//
// It is the one definition of the format. The load tester and the end-to-end suite
// import this package instead of parsing the header on their own.
//
// Format (whitespace around separators is ignored):
//
//	path  = hop *( "," hop )
//	hop   = service "/" version "@" instance *( ";" key "=" value )
//	token = 1*( ALPHA / DIGIT / "." / "_" / "-" )
//
// service, version, instance, key and value are tokens. The only key written today is
// "attempt": Envoy's x-envoy-attempt-count as the hop received it, present only when
// the request carried it. Example:
//
//	X-Meshdemo-Path: client/v1@client-6d9c7-x2k4p, server1/v2@server1-v2-5f7b9-qq8lm;attempt=2, server2/v1@server2-7c8d-9zt2w
package pathheader

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Name is the canonical header name.
const Name = "X-Meshdemo-Path"

// MaxHops bounds parsing so a hostile header cannot make a caller allocate without limit.
const MaxHops = 64

// Hop is one workload that handled the request.
type Hop struct {
	Service  string
	Version  string
	Instance string
	// Attrs holds the optional key=value pairs, for example "attempt".
	Attrs map[string]string
}

// String renders the hop in the header's format; attributes are sorted by key so the
// output is deterministic.
func (h Hop) String() string {
	var b strings.Builder
	b.Grow(len(h.Service) + len(h.Version) + len(h.Instance) + 2 + 16*len(h.Attrs))
	b.WriteString(h.Service)
	b.WriteByte('/')
	b.WriteString(h.Version)
	b.WriteByte('@')
	b.WriteString(h.Instance)
	if len(h.Attrs) > 0 {
		keys := make([]string, 0, len(h.Attrs))
		for k := range h.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteByte(';')
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(h.Attrs[k])
		}
	}
	return b.String()
}

// Validate reports whether every field is a token, so that String produces a hop
// that Parse accepts.
func (h Hop) Validate() error {
	for _, f := range []struct{ name, v string }{{"service", h.Service}, {"version", h.Version}, {"instance", h.Instance}} {
		if !IsToken(f.v) {
			return fmt.Errorf("hop %s %q is not a token ([A-Za-z0-9._-]+)", f.name, f.v)
		}
	}
	for k, v := range h.Attrs {
		if !IsToken(k) || !IsToken(v) {
			return fmt.Errorf("hop attribute %q=%q is not a token pair", k, v)
		}
	}
	return nil
}

// Prepend returns the header value for a hop that called upstream and got back
// upstreamPath (which may be empty when the upstream did not answer with one).
func Prepend(self Hop, upstreamPath string) string {
	upstreamPath = strings.TrimSpace(upstreamPath)
	if upstreamPath == "" {
		return self.String()
	}
	return self.String() + ", " + upstreamPath
}

// ErrEmpty is returned by Parse for an empty header.
var ErrEmpty = errors.New("path header is empty")

// Parse reads a header value into hops. It rejects anything outside the grammar.
func Parse(v string) ([]Hop, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, ErrEmpty
	}
	parts := strings.Split(v, ",")
	if len(parts) > MaxHops {
		return nil, fmt.Errorf("path header has %d hops, more than %d", len(parts), MaxHops)
	}
	hops := make([]Hop, 0, len(parts))
	for i, p := range parts {
		h, err := parseHop(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("hop %d: %w", i+1, err)
		}
		hops = append(hops, h)
	}
	return hops, nil
}

func parseHop(s string) (Hop, error) {
	fields := strings.Split(s, ";")
	head := strings.TrimSpace(fields[0])
	svc, rest, ok := strings.Cut(head, "/")
	if !ok {
		return Hop{}, fmt.Errorf("%q: missing '/' between service and version", head)
	}
	ver, inst, ok := strings.Cut(rest, "@")
	if !ok {
		return Hop{}, fmt.Errorf("%q: missing '@' between version and instance", head)
	}
	h := Hop{Service: svc, Version: ver, Instance: inst}
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return Hop{}, fmt.Errorf("attribute %q: missing '='", f)
		}
		if h.Attrs == nil {
			h.Attrs = make(map[string]string, 1)
		}
		h.Attrs[k] = val
	}
	if err := h.Validate(); err != nil {
		return Hop{}, err
	}
	return h, nil
}

// Find returns the first hop of the given service.
func Find(hops []Hop, service string) (Hop, bool) {
	for _, h := range hops {
		if h.Service == service {
			return h, true
		}
	}
	return Hop{}, false
}

// IsToken reports whether s is a non-empty run of [A-Za-z0-9._-].
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
