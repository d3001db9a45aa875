package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"workloads"}, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "client\nserver1\nserver2\nuser-service\n" {
		t.Errorf("workloads printed %q", got)
	}
	for _, bad := range [][]string{nil, {"nope"}, {"workloads", "extra"}} {
		if err := run(bad, &out); err == nil || !strings.Contains(err.Error(), "want") && !strings.Contains(err.Error(), "usage") {
			t.Errorf("run(%q) = %v, want a usage error", bad, err)
		}
	}
}
