package faults_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/faults"
)

func TestParseDirectives(t *testing.T) {
	t.Parallel()
	delay := func(d time.Duration, pct float64) faults.Action {
		return faults.Action{Kind: faults.KindDelay, Delay: d, Percent: pct}
	}
	abort := func(code int, pct float64) faults.Action {
		return faults.Action{Kind: faults.KindAbort, Status: code, Percent: pct}
	}
	tests := []struct {
		name    string
		in      string
		want    faults.Directives
		canon   string
		wantErr string
	}{
		{name: "empty", in: "", want: nil, canon: ""},
		{name: "blank", in: " \t", want: nil, canon: ""},
		{name: "delay", in: "server2=delay:5.5s",
			want: faults.Directives{{Target: "server2", Actions: []faults.Action{delay(5500*time.Millisecond, 100)}}}, canon: "server2=delay:5.5s"},
		{name: "abort with percent", in: "server1=abort:503@50",
			want: faults.Directives{{Target: "server1", Actions: []faults.Action{abort(503, 50)}}}, canon: "server1=abort:503@50"},
		{name: "several actions and directives with whitespace", in: " server2 = delay:200ms@20 ; abort:500@12.5 ,user-service=delay:1m30s ",
			want: faults.Directives{
				{Target: "server2", Actions: []faults.Action{delay(200*time.Millisecond, 20), abort(500, 12.5)}},
				{Target: "user-service", Actions: []faults.Action{delay(90*time.Second, 100)}},
			}, canon: "server2=delay:200ms@20;abort:500@12.5,user-service=delay:1m30s"},
		{name: "explicit 100 and 0 percent", in: "a=abort:400@100;delay:0s@0",
			want: faults.Directives{{Target: "a", Actions: []faults.Action{abort(400, 100), delay(0, 0)}}}, canon: "a=abort:400;delay:0s@0"},
		{name: "status bounds", in: "a=abort:400;abort:599",
			want: faults.Directives{{Target: "a", Actions: []faults.Action{abort(400, 100), abort(599, 100)}}}, canon: "a=abort:400;abort:599"},
		{name: "dotted target", in: "server2.meshdemo_v1=abort:404", want: faults.Directives{{Target: "server2.meshdemo_v1", Actions: []faults.Action{abort(404, 100)}}}, canon: "server2.meshdemo_v1=abort:404"},

		{name: "missing equals", in: "server2", wantErr: `directive 1 "server2": want target=action`},
		{name: "missing target", in: "=delay:1s", wantErr: "missing target"},
		{name: "bad target char", in: "server 2=delay:1s", wantErr: `target "server 2": only letters`},
		{name: "wildcard target", in: "*=delay:1s", wantErr: "only letters"},
		{name: "target too long", in: strings.Repeat("a", 64) + "=delay:1s", wantErr: "target is 64 characters, at most 63"},
		{name: "unknown action", in: "server2=sleep:1s", wantErr: `unknown action "sleep": want delay or abort`},
		{name: "action without colon", in: "server2=delay", wantErr: `action "delay": want delay:DURATION or abort:STATUS`},
		{name: "empty action", in: "server2=delay:1s;", wantErr: "empty action"},
		{name: "empty actions", in: "server2=", wantErr: "empty action"},
		{name: "bad duration", in: "server2=delay:abc", wantErr: `time: invalid duration "abc"`},
		{name: "duration without unit", in: "server2=delay:5", wantErr: "missing unit"},
		{name: "negative duration", in: "server2=delay:-1s", wantErr: "delay -1s is negative"},
		{name: "status too low", in: "server1=abort:302", wantErr: "status 302: want an error status, 400 to 599"},
		{name: "status too high", in: "server1=abort:600", wantErr: "status 600"},
		{name: "status not digits", in: "server1=abort:5xx", wantErr: `status "5xx": want three digits`},
		{name: "status four digits", in: "server1=abort:5030", wantErr: "want three digits"},
		{name: "percent above 100", in: "server1=abort:503@100.5", wantErr: "percent: 100.5 is above 100"},
		{name: "percent negative", in: "server1=abort:503@-5", wantErr: "percent"},
		{name: "percent empty", in: "server1=abort:503@", wantErr: "percent: missing number"},
		{name: "percent with sign", in: "server1=abort:503@+5", wantErr: "not a number"},
		{name: "two percents", in: "server1=abort:503@5@6", wantErr: "not a number"},
		{name: "stray comma", in: "server1=abort:503,", wantErr: "directive 2 \"\": empty directive"},
		{name: "second directive named in error", in: "server1=abort:503, server2=delay:x", wantErr: `directive 2 "server2=delay:x"`},
		{name: "too many directives", in: strings.Repeat("a=delay:1s,", 16) + "a=delay:1s", wantErr: "17 directives, at most 16"},
		{name: "too many actions", in: "a=" + strings.Repeat("delay:1s;", 8) + "delay:1s", wantErr: "9 actions, at most 8"},
		{name: "too long", in: "a=delay:1s;" + strings.Repeat(" ", 1020), wantErr: "X-Meshdemo-Fault is 1031 bytes, at most 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := faults.ParseDirectives(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDirectives(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("ParseDirectives(%q) returned %v alongside an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDirectives(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseDirectives(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if got.String() != tt.canon {
				t.Errorf("String() = %q, want %q", got.String(), tt.canon)
			}
		})
	}
}

func TestDirectivesFor(t *testing.T) {
	t.Parallel()
	ds, err := faults.ParseDirectives("server2=delay:1s, server1=abort:500, server2=abort:503@50, Server2=abort:404")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		service string
		want    string // the actions rendered, ";"-joined
	}{
		{"server2", "delay:1s;abort:503@50"},
		{"server1", "abort:500"},
		{"Server2", "abort:404"},
		{"client", ""},
	}
	for _, tt := range tests {
		var parts []string
		for _, a := range ds.For(tt.service) {
			parts = append(parts, a.String())
		}
		if got := strings.Join(parts, ";"); got != tt.want {
			t.Errorf("For(%q) = %q, want %q", tt.service, got, tt.want)
		}
	}
}
