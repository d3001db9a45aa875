package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is a workload's tracer provider and propagator. Enabled is false when no
// OTLP endpoint is configured: then spans are no-ops, and trace ids in logs come from
// the inbound headers alone.
type Tracing struct {
	Provider   trace.TracerProvider
	Propagator propagation.TextMapPropagator
	Enabled    bool
	shutdown   func(context.Context) error
}

// TracingConfig names the resource and the export endpoint.
type TracingConfig struct {
	Service, Version, Instance string
	// Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT (base URL; /v1/traces is appended).
	Endpoint string
}

// Propagator is W3C trace context + B3 (single and multi header, so both Envoy's
// Zipkin headers and newer b3 readers see the current span). Baggage is left out on
// purpose: it is forwarded raw by the propagation package, and OTel's baggage parser
// reports every malformed header through a process-global logger.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{},
		b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader|b3.B3SingleHeader)))
}

// NewTracing exports over OTLP/HTTP when cfg.Endpoint is set.
func NewTracing(cfg TracingConfig) (*Tracing, error) {
	t := &Tracing{Propagator: Propagator(), shutdown: func(context.Context) error { return nil }}
	if cfg.Endpoint == "" {
		t.Provider = noop.NewTracerProvider()
		return t, nil
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(cfg.Endpoint+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.Service),
		semconv.ServiceVersion(cfg.Version),
		semconv.ServiceInstanceID(cfg.Instance))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Provider, t.Enabled, t.shutdown = tp, true, tp.Shutdown
	return t, nil
}

// Shutdown flushes buffered spans.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }
