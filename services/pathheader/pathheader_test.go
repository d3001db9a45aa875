package pathheader

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string // hops rendered back
		wantErr  string
	}{
		{"one hop", "server2/v1@server2-abc", []string{"server2/v1@server2-abc"}, ""},
		{"chain with attempt", "client/v1@c-1, server1/v2@s1;attempt=2 ,server2/v1@s2",
			[]string{"client/v1@c-1", "server1/v2@s1;attempt=2", "server2/v1@s2"}, ""},
		{"sorted attrs", "a/b@c;z=1;attempt=3", []string{"a/b@c;attempt=3;z=1"}, ""},
		{"empty", "  ", nil, "empty"},
		{"no slash", "server2v1@x", nil, "missing '/'"},
		{"no at", "server2/v1", nil, "missing '@'"},
		{"bad token", "server 2/v1@x", nil, "not a token"},
		{"empty version", "server2/@x", nil, "not a token"},
		{"empty hop", "a/b@c,,d/e@f", nil, "hop 2"},
		{"attr without value", "a/b@c;attempt", nil, "missing '='"},
		{"too many hops", strings.Repeat("a/b@c,", MaxHops) + "a/b@c", nil, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hops, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(hops) != len(tc.want) {
				t.Fatalf("%d hops, want %d", len(hops), len(tc.want))
			}
			for i, h := range hops {
				if h.String() != tc.want[i] {
					t.Errorf("hop %d = %q, want %q", i, h, tc.want[i])
				}
			}
		})
	}
}

func TestPrependAndFind(t *testing.T) {
	t.Parallel()
	self := Hop{Service: "client", Version: "v1", Instance: "c"}
	v := Prepend(self, Prepend(Hop{Service: "server1", Version: "v2", Instance: "s", Attrs: map[string]string{"attempt": "2"}}, "server2/v1@x"))
	if v != "client/v1@c, server1/v2@s;attempt=2, server2/v1@x" {
		t.Fatalf("got %q", v)
	}
	if Prepend(self, " ") != "client/v1@c" {
		t.Fatal("empty upstream path must leave only self")
	}
	hops, _ := Parse(v)
	h, ok := Find(hops, "server1")
	if !ok || h.Version != "v2" || h.Attrs["attempt"] != "2" {
		t.Fatalf("Find: %+v %v", h, ok)
	}
	if _, ok := Find(hops, "user-service"); ok {
		t.Fatal("found a hop that is not there")
	}
}

// FuzzParse: whatever parses renders back to something that parses to the same hops.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a/b@c", "client/v1@c-1, server1/v2@s1;attempt=2", "a/b@c;;", ",", "a/b@c;k=v=w", "é/ü@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		hops, err := Parse(in)
		if err != nil {
			return
		}
		parts := make([]string, len(hops))
		for i, h := range hops {
			if err := h.Validate(); err != nil {
				t.Fatalf("Parse returned an invalid hop: %v", err)
			}
			parts[i] = h.String()
		}
		again, err := Parse(strings.Join(parts, ", "))
		if err != nil || len(again) != len(hops) {
			t.Fatalf("round trip of %q failed: %v", in, err)
		}
		for i := range hops {
			if again[i].String() != parts[i] {
				t.Fatalf("round trip changed hop %d: %q vs %q", i, again[i], parts[i])
			}
		}
	})
}
