package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestRunRejectsBadGRPCConfig: the gRPC settings are validated with the rest, every
// problem named at once.
func TestRunRejectsBadGRPCConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GRPC_PORT": "-1", "SERVER2_GRPC_ADDR": "server2"}
	err := run(context.Background(), []string{"server1"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"GRPC_PORT=-1", `SERVER2_GRPC_ADDR="server2"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
