package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		args    []string
		want    string // in stdout
		wantErr string
	}{
		{"scenario with canary", []string{"-root", "../../..", "weighted-split"}, "weight: 20", ""},
		{"preset", []string{"-root", "../../..", "default"}, "name: client-v1", ""},
		{"alone", []string{"-root", "../../..", "-alone", "mirroring"}, "mirrorPercentage", ""},
		{"gateway-api flavour", []string{"-root", "../../..", "-flavour", "gateway-api", "weighted-split"}, "name: server1-v2", ""},
		{"ambient flavour", []string{"-root", "../../..", "-flavour", "ambient", "default"}, "istio.io/dataplane-mode: ambient", ""},
		{"ambient alone", []string{"-root", "../../..", "-flavour", "ambient", "-alone", "authz"}, "name: waypoint-allow-nothing", ""},
		{"unknown flavour", []string{"-root", "../../..", "-flavour", "istio", "default"}, "", `unknown flavour "istio"`},
		{"unknown scenario", []string{"-root", "../../..", "nope"}, "", `unknown scenario "nope"`},
		{"preset is not a component", []string{"-root", "../../..", "-alone", "canary"}, "", "unknown scenario"},
		{"no scenario", []string{"-root", "../../.."}, "", "want one scenario"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(c.args, &out)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("output lacks %q", c.want)
			}
		})
	}
}
