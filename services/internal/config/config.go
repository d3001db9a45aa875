// Package config reads a workload's configuration once, from an injected environment,
// with caarlos0/env. Workload config structs embed Common so shared knobs keep one name
// everywhere.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Common holds the knobs every workload has.
type Common struct {
	Port      int `env:"PORT" envDefault:"8080"`
	AdminPort int `env:"ADMIN_PORT" envDefault:"9090"`
	// ListenHost is the address to bind; empty means every interface (what a pod needs).
	// `make run` sets 127.0.0.1 so local runs stay on loopback.
	ListenHost     string `env:"LISTEN_HOST"`
	ServiceName    string `env:"SERVICE_NAME"`
	ServiceVersion string `env:"SERVICE_VERSION" envDefault:"v1"`
	// Instance identifies this process in the path header; Kubernetes and Docker set
	// HOSTNAME to the pod or container name.
	Instance         string        `env:"HOSTNAME"`
	UpstreamTimeout  time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"15s"`
	PropagateHeaders []string      `env:"PROPAGATE_HEADERS" envSeparator:","`
	LogLevel         slog.Level    `env:"LOG_LEVEL" envDefault:"info"`
	DrainDelay       time.Duration `env:"DRAIN_DELAY" envDefault:"5s"`
	ShutdownTimeout  time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// IdleTimeout is longer than Envoy's one-hour upstream idle timeout: a server that
	// closes keep-alive connections first races the sidecar and surfaces as 503 UC.
	IdleTimeout  time.Duration `env:"IDLE_TIMEOUT" envDefault:"65m"`
	OTLPEndpoint string        `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
}

// Validate reports every problem at once so a misconfigured pod says all of it in one log line.
func (c Common) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    int
	}{{"PORT", c.Port}, {"ADMIN_PORT", c.AdminPort}} {
		if p.v < 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s=%d: must be between 0 (any free port) and 65535", p.name, p.v))
		}
	}
	if c.Port == c.AdminPort && c.Port != 0 {
		errs = append(errs, fmt.Errorf("PORT and ADMIN_PORT are both %d: the admin port must differ", c.Port))
	}
	for _, t := range []struct{ name, v string }{
		{"SERVICE_NAME", c.ServiceName}, {"SERVICE_VERSION", c.ServiceVersion}, {"HOSTNAME", c.Instance},
	} {
		if !pathheader.IsToken(t.v) {
			errs = append(errs, fmt.Errorf("%s=%q: must be 1+ characters of [A-Za-z0-9._-]", t.name, t.v))
		}
	}
	if c.UpstreamTimeout <= 0 {
		errs = append(errs, fmt.Errorf("UPSTREAM_TIMEOUT=%s: must be positive", c.UpstreamTimeout))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("DRAIN_DELAY=%s: must not be negative", c.DrainDelay))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT=%s: must be positive", c.ShutdownTimeout))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("IDLE_TIMEOUT=%s: must be positive", c.IdleTimeout))
	}
	for _, h := range c.PropagateHeaders {
		if !isHeaderName(strings.TrimSpace(h)) {
			errs = append(errs, fmt.Errorf("PROPAGATE_HEADERS: %q is not a valid header name", h))
		}
	}
	if c.OTLPEndpoint != "" {
		if err := ValidateURL("OTEL_EXPORTER_OTLP_ENDPOINT", c.OTLPEndpoint); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ValidateURL checks an http(s) URL with a host, as every upstream needs.
func ValidateURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", name, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q: must be an absolute http(s) URL such as http://server1:8080", name, raw)
	}
	return nil
}

// Parse fills v (a pointer to a struct with env tags) from getenv. Only the keys the
// struct declares are read, so the process environment is never scanned.
//
// caarlos0/env goes on past a value that does not parse and returns every such
// error together (env.AggregateError); Parse names the variables in them. A field
// whose value failed is then set to its default, so that the caller can still
// validate the rest (Validate does not run inside env) and report every problem in
// one go, without also complaining about a zero value nobody set.
func Parse(getenv func(string) string, v any) error {
	params, err := env.GetFieldParams(v)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	environ := make(map[string]string, len(params))
	for _, p := range params {
		if val := getenv(p.Key); val != "" {
			environ[p.Key] = val
		}
	}
	err = env.ParseWithOptions(v, env.Options{Environment: environ})
	if err == nil {
		return nil
	}
	failed, named := nameVariables(v, environ, err)
	if len(failed) > 0 {
		for _, k := range failed {
			delete(environ, k)
		}
		// The same struct again, without the bad values: the good ones are set as
		// before and the failed fields get their defaults.
		if again := env.ParseWithOptions(v, env.Options{Environment: environ}); again != nil {
			named = errors.Join(named, again)
		}
	}
	return named
}

// nameVariables rewrites caarlos0/env's parse errors, which name Go fields, to name
// the environment variable a user has to fix, and returns those variables.
func nameVariables(v any, environ map[string]string, err error) ([]string, error) {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return nil, fmt.Errorf("config: %w", err)
	}
	var out []error
	var failed []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if key := envKey(reflect.TypeOf(v), pe.Name); key != "" {
				failed = append(failed, key)
				// A custom parser that names the variable already is taken at its word:
				// it may leave the value out on purpose (a URL with a password).
				if msg := pe.Err.Error(); strings.HasPrefix(msg, key+"=") || strings.HasPrefix(msg, key+":") {
					e = pe.Err
				} else {
					e = fmt.Errorf("%s=%q: %w", key, environ[key], pe.Err)
				}
			}
		}
		out = append(out, e)
	}
	return failed, errors.Join(out...)
}

func envKey(t reflect.Type, field string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == field {
			if k, _, _ := strings.Cut(f.Tag.Get("env"), ","); k != "" {
				return k
			}
		}
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
			if k := envKey(f.Type, field); k != "" {
				return k
			}
		}
	}
	return ""
}

func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
