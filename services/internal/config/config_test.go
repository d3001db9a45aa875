package config

import (
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Common
	URL string `env:"SERVER2_URL" envDefault:"http://server2:8080"`
}

func TestParseDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PORT": "8181", "SERVICE_VERSION": "v2", "PROPAGATE_HEADERS": "x-a, x-b", "LOG_LEVEL": "debug", "UPSTREAM_TIMEOUT": "3s"}
	var c testConfig
	if err := Parse(func(k string) string { return env[k] }, &c); err != nil {
		t.Fatal(err)
	}
	if c.Port != 8181 || c.AdminPort != 9090 || c.ServiceVersion != "v2" || c.UpstreamTimeout != 3*time.Second ||
		c.URL != "http://server2:8080" || len(c.PropagateHeaders) != 2 || c.LogLevel.String() != "DEBUG" || c.DrainDelay != 5*time.Second {
		t.Fatalf("parsed %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{{"PORT": "eighty"}, {"UPSTREAM_TIMEOUT": "5"}, {"LOG_LEVEL": "loud"}} {
		var c testConfig
		if err := Parse(func(k string) string { return env[k] }, &c); err == nil {
			t.Errorf("%v: no error", env)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	valid := Common{Port: 8080, AdminPort: 9090, ServiceName: "client", ServiceVersion: "v1", Instance: "pod-1",
		UpstreamTimeout: time.Second, ShutdownTimeout: time.Second, IdleTimeout: time.Minute}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Common)
		want   string
	}{
		{"port range", func(c *Common) { c.Port = 70000 }, "PORT=70000"},
		{"same ports", func(c *Common) { c.AdminPort = 8080 }, "admin port must differ"},
		{"version with space", func(c *Common) { c.ServiceVersion = "v 1" }, "SERVICE_VERSION"},
		{"empty version", func(c *Common) { c.ServiceVersion = "" }, "SERVICE_VERSION"},
		{"zero timeout", func(c *Common) { c.UpstreamTimeout = 0 }, "UPSTREAM_TIMEOUT"},
		{"negative drain", func(c *Common) { c.DrainDelay = -time.Second }, "DRAIN_DELAY"},
		{"bad header name", func(c *Common) { c.PropagateHeaders = []string{"x y"} }, "PROPAGATE_HEADERS"},
		{"bad otlp", func(c *Common) { c.OTLPEndpoint = "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT"},
	}
	for _, tc := range tests {
		c := valid
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want mention of %q", tc.name, err, tc.want)
		}
	}
	if err := ValidateURL("X", "ftp://a"); err == nil {
		t.Error("ftp URL accepted")
	}
}
