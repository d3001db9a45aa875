package main

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseID: an accepted id is exactly the canonical spelling of a positive int64.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "+1", "01", "001", "-1", "0", "9223372036854775807", "9223372036854775808", " 1", "1e3", "１"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := parseID(raw)
		if err != nil {
			return
		}
		if id <= 0 || strconv.FormatInt(id, 10) != raw {
			t.Fatalf("accepted %q as %d", raw, id)
		}
	})
}

// FuzzParsePage: accepted pages have a limit of 1-1000 and a non-negative after.
func FuzzParsePage(f *testing.F) {
	for _, s := range []string{"", "limit=5", "limit=0", "limit=1001", "after=3&limit=2", "limit=1&limit=2", "after=-1", "limit=%zz", "after=01", "x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		limit, after, err := parsePage(q)
		if err == nil && (limit < 1 || limit > maxLimit || after < 0) {
			t.Fatalf("%q: limit %d after %d", q, limit, after)
		}
	})
}

// FuzzParseIfMatch: never panics; "*" alone is unconditional; revisions come only from
// strong, canonical tags.
func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{`"1"`, `*`, `W/"1"`, `"1", "2"`, `1`, `""`, `"a b"`, `*, "1"`, `"01"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		m, err := parseIfMatch([]string{h})
		if err != nil || m == nil {
			if err == nil && strings.TrimSpace(h) != "*" {
				t.Fatalf("%q: unconditional", h)
			}
			return
		}
		for _, r := range m.Revs {
			if !strings.Contains(h, `"`+strconv.FormatInt(r, 10)+`"`) {
				t.Fatalf("%q: revision %d not in the header", h, r)
			}
		}
	})
}

// FuzzParseUserInputStrict: an accepted username is valid UTF-8 without control,
// format or separator characters, and the body held exactly one "username" key.
func FuzzParseUserInputStrict(f *testing.F) {
	for _, s := range []string{`{"username":"mick"}`, `{"USERNAME":"a"}`, `{"username":"a","username":"b"}`, `{"username":"\ud800"}`,
		`{"username":"\ud83d\ude00"}`, "{\"username\":\"\u202e\"}", "{\"username\":\"a\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, err := parseUserInput(body)
		if err != nil {
			return
		}
		if !utf8.ValidString(name) || !utf8.Valid(body) || bytes.Count(body, []byte(`"`)) < 4 {
			t.Fatalf("accepted %q from %q", name, body)
		}
		for _, r := range name {
			if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) || r == utf8.RuneError && !strings.Contains(string(body), "\uFFFD") && !strings.Contains(strings.ToLower(string(body)), `\ufffd`) {
				t.Fatalf("accepted %q (U+%04X) from %q", name, r, body)
			}
		}
	})
}

// TestConfig: DATABASE_URL and the store knobs are checked before anything starts, and
// a bad URL's password is not repeated.
func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"not postgres", map[string]string{"DATABASE_URL": "mysql://u:secret@db/x"}, "postgres:// URL"},
		{"unparsable", map[string]string{"DATABASE_URL": "postgres://u:secret@db:notaport/x"}, "DATABASE_URL"},
		{"zero cap", map[string]string{"USER_STORE_MAX_USERS": "0"}, "USER_STORE_MAX_USERS=0"},
		{"zero key cap", map[string]string{"USER_STORE_MAX_IDEMPOTENCY_KEYS": "0"}, "USER_STORE_MAX_IDEMPOTENCY_KEYS=0"},
		{"zero pool", map[string]string{"DATABASE_MAX_CONNS": "0"}, "DATABASE_MAX_CONNS=0"},
		{"zero timeout", map[string]string{"DATABASE_STATEMENT_TIMEOUT": "0s"}, "DATABASE_STATEMENT_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"PORT": "0", "ADMIN_PORT": "0", "HOSTNAME": "test"}
			for k, v := range tc.env {
				env[k] = v
			}
			var out bytes.Buffer
			err := run(context.Background(), []string{"user-service"}, func(k string) string { return env[k] }, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
				t.Fatalf("err %v, want it to name %q without the password", err, tc.want)
			}
		})
	}
}

// TestParseIfMatchLists: If-Match is "*" or a list of entity tags, and a list's empty
// elements are ignored (RFC 9110 §5.6.1: `"6",` and `, "6" ,, "7"` are the lists (6)
// and (6, 7)); a field with no tag at all, or a bad member, is 400.
func TestParseIfMatchLists(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		revs []int64 // nil with ok: unconditional
		ok   bool
	}{
		{[]string{`"6"`}, []int64{6}, true},
		{[]string{`"6",`}, []int64{6}, true},
		{[]string{`, "6" ,, "7"`}, []int64{6, 7}, true},
		{[]string{`"6"`, `,`, ` "7", `}, []int64{6, 7}, true},
		{[]string{`*`}, nil, true},
		{[]string{` * `}, nil, true},
		{[]string{`,`}, nil, false},
		{[]string{``}, nil, false},
		{[]string{`"6", x`}, nil, false},
		{[]string{`*, "6"`}, nil, false},
	} {
		m, err := parseIfMatch(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		var got []int64
		if m != nil {
			got = m.Revs
			if got == nil {
				got = []int64{}
			}
		}
		if !slices.Equal(got, tc.revs) || (m == nil) != (tc.revs == nil) {
			t.Errorf("%q: %v (match %v), want %v", tc.in, got, m, tc.revs)
		}
	}
}
