package faults_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/services/internal/faults"
)

// FuzzParseDirectives: the parser never panics, respects its bounds, only returns
// values inside the grammar's ranges, and its canonical String form parses back to
// the same directives (when that form still fits the length bound). Run longer with:
//
//	cd services && go test -run '^$' -fuzz FuzzParseDirectives -fuzztime 60s ./internal/faults
func FuzzParseDirectives(f *testing.F) {
	for _, s := range []string{
		"", "server2=delay:5.5s", "server1=abort:503@50", "server2=delay:200ms@20;abort:500@12.5, user-service=delay:1m30s",
		"a=abort:400@0;delay:0s@100", "server2=delay:-1s", "server2=abort:302", "=delay:1s", "a=delay:1s,",
		"a=delay:1s@1.5.5", "a=delay:9223372036854775807ns", "a=delay:2562047h47m16.854775807s",
		"a=abort:503@99.99999999999999999", strings.Repeat("a=delay:1s,", 16), "x=delay:1ms;" + strings.Repeat(" ", 1013),
		"a=delay:1µs", "a = delay:1s ; abort:500 @ 5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ds, err := faults.ParseDirectives(s)
		if err != nil {
			if ds != nil {
				t.Fatalf("error %v with non-nil result %v", err, ds)
			}
			return
		}
		if len(s) > faults.MaxHeaderBytes {
			t.Fatalf("accepted %d bytes", len(s))
		}
		if len(ds) > faults.MaxDirectives {
			t.Fatalf("accepted %d directives", len(ds))
		}
		for _, d := range ds {
			if d.Target == "" || len(d.Actions) == 0 || len(d.Actions) > faults.MaxActions {
				t.Fatalf("bad directive %#v from %q", d, s)
			}
			for _, a := range d.Actions {
				if a.Percent < 0 || a.Percent > 100 || a.Percent != a.Percent {
					t.Fatalf("percent %v out of range from %q", a.Percent, s)
				}
				switch a.Kind {
				case faults.KindDelay:
					if a.Delay < 0 {
						t.Fatalf("negative delay from %q", s)
					}
				case faults.KindAbort:
					if a.Status < 400 || a.Status > 599 {
						t.Fatalf("status %d from %q", a.Status, s)
					}
				default:
					t.Fatalf("kind %q from %q", a.Kind, s)
				}
			}
		}
		canon := ds.String()
		if len(canon) > faults.MaxHeaderBytes {
			return // Go's duration form can be longer than the input ("1h" is "1h0m0s")
		}
		back, err := faults.ParseDirectives(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", canon, s, err)
		}
		if !reflect.DeepEqual(back, ds) {
			t.Fatalf("round trip of %q via %q: got %#v, want %#v", s, canon, back, ds)
		}
	})
}
