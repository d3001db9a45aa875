package expect

import (
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

func TestParseSplit(t *testing.T) {
	t.Parallel()
	sp, err := ParseSplit("server2=v1:80, v2:20")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Service != "server2" || strings.Join(sp.Versions, ",") != "v1,v2" || sp.Weights[0] != 80 || sp.Weights[1] != 20 {
		t.Errorf("parsed %+v", sp)
	}
	for _, bad := range []string{"", "server2", "server2=", "server2=v1", "server2=v1:x", "server2=v1:-1",
		"server2=v1:0,v2:0", "server2=v1:50,v1:50", "ser ver=v1:1", "=v1:1"} {
		if _, err := ParseSplit(bad); err == nil {
			t.Errorf("ParseSplit(%q): want error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	st, err := ParseStatus("503:50,200:50")
	if err != nil || len(st) != 2 || st[0] != (Status{503, 50}) {
		t.Fatalf("got %v, %v", st, err)
	}
	for _, bad := range []string{"", "503", "503:x", "99:1", "503:101", "503:60,200:60", "abc:1"} {
		if _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q): want error", bad)
		}
	}
}

func summary(hops map[string]int64, status map[int]int64) result.Counts {
	s := result.Counts{Hops: map[string]map[string]int64{"server2": hops}, Status: status}
	for _, n := range status {
		s.Requests += n
	}
	return s
}

func TestCheckSplit(t *testing.T) {
	t.Parallel()
	sp, _ := ParseSplit("server2=v1:80,v2:20")
	cases := []struct {
		name    string
		hops    map[string]int64
		ok      bool
		message string
	}{
		{"true 80/20", map[string]int64{"v1": 480, "v2": 120}, true, "consistent"},
		{"70/30", map[string]int64{"v1": 420, "v2": 180}, false, "differs"},
		{"too few", map[string]int64{"v1": 80, "v2": 20}, false, "too few"},
		{"stray version", map[string]int64{"v1": 478, "v2": 120, "v3": 2}, false, "differs"},
		{"no hop", nil, false, "no response named server2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := CheckSplit(sp, summary(c.hops, nil), Defaults)
			if r.OK != c.ok || !strings.Contains(r.Message, c.message) {
				t.Errorf("ok=%v %q, want ok=%v containing %q", r.OK, r.Message, c.ok, c.message)
			}
			if c.hops != nil && (r.MinSamples < 540 || r.MinSamples > 580) {
				t.Errorf("min samples = %d", r.MinSamples)
			}
		})
	}
	one, _ := ParseSplit("server2=v2:100")
	if r := CheckSplit(one, summary(map[string]int64{"v2": 10}, nil), Defaults); !r.OK {
		t.Errorf("all v2: %+v", r)
	}
	if r := CheckSplit(one, summary(map[string]int64{"v2": 10, "v1": 1}, nil), Defaults); r.OK {
		t.Errorf("one stray v1 accepted: %+v", r)
	}
}

func TestCheckStatus(t *testing.T) {
	t.Parallel()
	st := Status{Code: 503, Percent: 50}
	ok := CheckStatus(st, summary(nil, map[int]int64{503: 251, 200: 249}), Defaults)
	if !ok.OK || *ok.AcceptLow > 45 || *ok.AcceptHigh < 55 || *ok.AcceptLow < 40 {
		t.Errorf("251/500: %+v (accept %.2f..%.2f)", ok, *ok.AcceptLow, *ok.AcceptHigh)
	}
	bad := CheckStatus(st, summary(nil, map[int]int64{503: 200, 200: 300}), Defaults)
	if bad.OK || !strings.Contains(bad.Message, "differs") {
		t.Errorf("200/500: %+v", bad)
	}
	none := CheckStatus(Status{Code: 503, Percent: 0}, summary(nil, map[int]int64{200: 100}), Defaults)
	if !none.OK {
		t.Errorf("0%% expected, none seen: %+v", none)
	}
}

func TestCheckP99(t *testing.T) {
	t.Parallel()
	if r := CheckP99(150*time.Millisecond, 120, 10); !r.OK {
		t.Errorf("120ms <= 150ms: %+v", r)
	}
	if r := CheckP99(100*time.Millisecond, 120, 10); r.OK || !strings.Contains(r.Message, "exceeds") {
		t.Errorf("120ms > 100ms: %+v", r)
	}
}
