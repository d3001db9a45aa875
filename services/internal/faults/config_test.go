package faults_test

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/meshdemo/meshdemo/services/internal/faults"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	with := func(f func(*faults.Config)) faults.Config {
		c := faults.DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     faults.Config
		wantErr []string // every substring must appear; none means valid
	}{
		{name: "defaults", cfg: faults.DefaultConfig()},
		{name: "everything on within bounds", cfg: with(func(c *faults.Config) {
			c.Delay, c.Latency, c.ErrorRate, c.ErrorCode, c.Sick, c.SickCode = time.Second, faults.MustParseLatency("p99=29s"), 100, 429, true, 500
		})},
		{name: "delay equal to max", cfg: with(func(c *faults.Config) { c.Delay = 30 * time.Second })},
		{name: "zero config", cfg: faults.Config{}, wantErr: []string{
			"FAULT_MAX_DELAY=0s: must be greater than 0", "FAULT_ERROR_CODE=0", "FAULT_SICK_CODE=0"}},
		{name: "negative delay", cfg: with(func(c *faults.Config) { c.Delay = -time.Second }), wantErr: []string{"FAULT_DELAY=-1s: must not be negative"}},
		{name: "delay above max", cfg: with(func(c *faults.Config) { c.Delay = 31 * time.Second }), wantErr: []string{"FAULT_DELAY=31s: above FAULT_MAX_DELAY=30s"}},
		{name: "delay plus latency above max", cfg: with(func(c *faults.Config) {
			c.Delay, c.Latency = 10*time.Second, faults.MustParseLatency("p50=1s,p99=25s")
		}), wantErr: []string{"FAULT_DELAY=10s plus the largest FAULT_LATENCY value 25s is 35s: above FAULT_MAX_DELAY=30s"}},
		{name: "error rate above 100", cfg: with(func(c *faults.Config) { c.ErrorRate = 100.5 }), wantErr: []string{"FAULT_ERROR_RATE=100.5: must be a percentage from 0 to 100"}},
		{name: "error rate negative", cfg: with(func(c *faults.Config) { c.ErrorRate = -1 }), wantErr: []string{"FAULT_ERROR_RATE=-1"}},
		{name: "error rate NaN", cfg: with(func(c *faults.Config) { c.ErrorRate = math.NaN() }), wantErr: []string{"FAULT_ERROR_RATE=NaN"}},
		{name: "error code 200", cfg: with(func(c *faults.Config) { c.ErrorCode = 200 }), wantErr: []string{"FAULT_ERROR_CODE=200: must be an HTTP error status from 400 to 599"}},
		{name: "error code 600", cfg: with(func(c *faults.Config) { c.ErrorCode = 600 }), wantErr: []string{"FAULT_ERROR_CODE=600"}},
		{name: "sick code 399", cfg: with(func(c *faults.Config) { c.SickCode = 399 }), wantErr: []string{"FAULT_SICK_CODE=399"}},
		{name: "negative max", cfg: with(func(c *faults.Config) { c.MaxDelay = -time.Second }), wantErr: []string{"FAULT_MAX_DELAY=-1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// workloadConfig mirrors how a workload embeds Config.
type workloadConfig struct {
	Port int `env:"PORT" envDefault:"8080"`
	faults.Config
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    faults.Config
		wantErr string
	}{
		{name: "defaults", env: map[string]string{}, want: faults.DefaultConfig()},
		{name: "all set", env: map[string]string{
			"FAULT_DELAY": "5.5s", "FAULT_LATENCY": "p90=80ms,p50=20ms", "FAULT_ERROR_RATE": "30",
			"FAULT_ERROR_CODE": "500", "FAULT_SICK": "true", "FAULT_SICK_CODE": "502",
			"FAULT_HEADER_ENABLED": "false", "FAULT_MAX_DELAY": "1m",
		}, want: faults.Config{
			Delay: 5500 * time.Millisecond, Latency: faults.MustParseLatency("p50=20ms,p90=80ms"), ErrorRate: 30,
			ErrorCode: 500, Sick: true, SickCode: 502, HeaderEnabled: false, MaxDelay: time.Minute,
		}},
		{name: "bad latency names the variable", env: map[string]string{"FAULT_LATENCY": "p50=fast"}, wantErr: "FAULT_LATENCY"},
		{name: "bad delay names the field", env: map[string]string{"FAULT_DELAY": "soon"}, wantErr: `field "Delay"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c workloadConfig
			err := env.ParseWithOptions(&c, env.Options{Environment: tt.env})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := c.Config
			if got.Latency.String() != tt.want.Latency.String() {
				t.Errorf("Latency = %q, want %q", got.Latency, tt.want.Latency)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
			if c.Port != 8080 {
				t.Errorf("Port = %d: embedding broke the outer struct", c.Port)
			}
		})
	}
}
