package faults

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config is the per-workload fault configuration. Workloads embed it in their own
// config struct (no envPrefix) and caarlos0/env fills it; the defaults below are the
// contract's. A zero Config is not valid (status codes and the delay cap are zero):
// use DefaultConfig when building one by hand.
type Config struct {
	// Delay is added to every request of the workload API (FAULT_DELAY).
	Delay time.Duration `env:"FAULT_DELAY"`
	// Latency is a delay drawn per request from a percentile distribution, added to
	// Delay (FAULT_LATENCY, for example "p50=20ms,p90=80ms,p99=300ms").
	Latency Latency `env:"FAULT_LATENCY"`
	// ErrorRate is the percentage (0-100) of requests answered with ErrorCode
	// (FAULT_ERROR_RATE).
	ErrorRate float64 `env:"FAULT_ERROR_RATE"`
	// ErrorCode is the status of those injected errors (FAULT_ERROR_CODE).
	ErrorCode int `env:"FAULT_ERROR_CODE" envDefault:"503"`
	// Sick starts the instance sick: every API request gets SickCode until
	// POST /admin/healthy (FAULT_SICK).
	Sick bool `env:"FAULT_SICK"`
	// SickCode is the status a sick instance answers with (FAULT_SICK_CODE).
	SickCode int `env:"FAULT_SICK_CODE" envDefault:"503"`
	// HeaderEnabled turns X-Meshdemo-Fault directives on; when false the header is
	// ignored entirely, not rejected (FAULT_HEADER_ENABLED).
	HeaderEnabled bool `env:"FAULT_HEADER_ENABLED" envDefault:"true"`
	// MaxDelay caps every delay this instance will sleep: FAULT_DELAY plus the
	// slowest FAULT_LATENCY value, and the sum of the header delays aimed at this
	// service (FAULT_MAX_DELAY).
	MaxDelay time.Duration `env:"FAULT_MAX_DELAY" envDefault:"30s"`
}

// DefaultConfig is the configuration with every default of the env tags applied:
// no faults, header directives on, 30s cap.
func DefaultConfig() Config {
	return Config{
		ErrorCode:     503,
		SickCode:      503,
		HeaderEnabled: true,
		MaxDelay:      30 * time.Second,
	}
}

// Validate reports every problem at once, each naming the variable to fix.
func (c Config) Validate() error {
	var errs []error
	if c.MaxDelay <= 0 {
		errs = append(errs, fmt.Errorf("FAULT_MAX_DELAY=%s: must be greater than 0", c.MaxDelay))
	}
	if c.Delay < 0 {
		errs = append(errs, fmt.Errorf("FAULT_DELAY=%s: must not be negative", c.Delay))
	}
	if c.MaxDelay > 0 && c.Delay >= 0 {
		if c.Delay > c.MaxDelay {
			errs = append(errs, fmt.Errorf("FAULT_DELAY=%s: above FAULT_MAX_DELAY=%s", c.Delay, c.MaxDelay))
		} else if total := c.Delay + c.Latency.Max(); c.Latency.Max() > 0 && total > c.MaxDelay {
			errs = append(errs, fmt.Errorf("FAULT_DELAY=%s plus the largest FAULT_LATENCY value %s is %s: above FAULT_MAX_DELAY=%s",
				c.Delay, c.Latency.Max(), total, c.MaxDelay))
		}
	}
	if math.IsNaN(c.ErrorRate) || c.ErrorRate < 0 || c.ErrorRate > 100 {
		errs = append(errs, fmt.Errorf("FAULT_ERROR_RATE=%v: must be a percentage from 0 to 100", c.ErrorRate))
	}
	if !isErrorStatus(c.ErrorCode) {
		errs = append(errs, fmt.Errorf("FAULT_ERROR_CODE=%d: must be an HTTP error status from 400 to 599", c.ErrorCode))
	}
	if !isErrorStatus(c.SickCode) {
		errs = append(errs, fmt.Errorf("FAULT_SICK_CODE=%d: must be an HTTP error status from 400 to 599", c.SickCode))
	}
	return errors.Join(errs...)
}

// configured reports whether any environment fault can fire; when false (and the
// instance is healthy) the middleware is a pass-through.
func (c Config) configured() bool {
	return c.Delay > 0 || !c.Latency.IsZero() || c.ErrorRate > 0
}

func isErrorStatus(code int) bool { return code >= 400 && code <= 599 }
