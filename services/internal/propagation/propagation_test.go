package propagation

import (
	"net/http"
	"testing"

	"github.com/meshdemo/meshdemo/services/headers"
)

func TestCaptureApply(t *testing.T) {
	t.Parallel()
	p := New([]string{" x-tenant ", "X-REQUEST-ID", ""})
	if n := len(p.Names()); n != len(headers.Propagated())+1 {
		t.Fatalf("%d names: duplicates or blanks kept", n)
	}
	in := http.Header{}
	in.Add("Cookie", "a=1")
	// Spare capacity behind the inbound values, so an outbound append that did not
	// reallocate would write into them (and the assertions below would see it).
	in["Baggage"] = append(make([]string, 0, 8), "k=v", "k2=v2")
	in.Set("X-Tenant", "acme")
	in.Set("Authorization", "secret")
	c := p.Capture(in)
	c.Set("x-request-id", "generated")
	out := http.Header{}
	c.Apply(out)
	if out.Get("Authorization") != "" {
		t.Error("unlisted header forwarded")
	}
	if len(out.Values("Baggage")) != 2 || out.Get("Cookie") != "a=1" || out.Get("X-Tenant") != "acme" || out.Get("X-Request-Id") != "generated" {
		t.Errorf("forwarded %v", out)
	}
	out.Set("Cookie", "changed") // outbound edits must not touch the inbound request
	out.Add("Baggage", "k3=v3")
	out["Baggage"][0] = "edited" // (nothing in the kit edits in place; this pins that Add reallocates)
	if in.Get("Cookie") != "a=1" || len(in["Baggage"]) != 2 || in["Baggage"][0] != "k=v" || in["Baggage"][:3][2] != "" {
		t.Errorf("Apply aliases the inbound values: %q (backing %q)", in["Baggage"], in["Baggage"][:3])
	}
	if (Carried{}).Len() != 0 {
		t.Error("zero value carries headers")
	}
}

// FuzzCapture: arbitrary header names and values are carried exactly when listed.
func FuzzCapture(f *testing.F) {
	f.Add("end-user", "jason")
	f.Add("x-unknown", "v")
	f.Add("CANARY_ID", "\x00\xff")
	p := New([]string{"x-extra"})
	listed := map[string]bool{}
	for _, n := range p.Names() {
		listed[n] = true
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		in := http.Header{}
		in.Set(name, value)
		out := http.Header{}
		p.Capture(in).Apply(out)
		key := http.CanonicalHeaderKey(name)
		if listed[key] && out.Get(key) != value {
			t.Fatalf("listed %q lost", key)
		}
		if !listed[key] && len(out) != 0 {
			t.Fatalf("unlisted %q forwarded", key)
		}
	})
}
