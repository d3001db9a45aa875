// Package metrics exposes a running load test to Prometheus, so the load shows up on
// the same dashboards as the mesh it drives: requests by status, errors by kind,
// responses by hop version, and a latency histogram.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshdemo/meshdemo/loadtest/internal/result"
)

// Exporter is a result.Observer that updates Prometheus collectors on its own registry.
type Exporter struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	hops     *prometheus.CounterVec
	latency  prometheus.Histogram
}

// New registers the collectors on a new registry.
func New() *Exporter {
	e := &Exporter{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loadtest_responses_total", Help: "Responses received, by HTTP status code.",
		}, []string{"code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loadtest_errors_total", Help: "Requests that got no HTTP status, by kind (timeout, connect, transport).",
		}, []string{"kind"}),
		hops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loadtest_hop_responses_total", Help: "Responses whose path header names the service at the version.",
		}, []string{"service", "version"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "loadtest_request_duration_seconds",
			Help:    "Latency from when a request was due to its response.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	e.reg.MustRegister(e.requests, e.errors, e.hops, e.latency)
	return e
}

// Observe implements result.Observer.
func (e *Exporter) Observe(code int, errKind string, latency time.Duration, hops []result.Hop) {
	e.latency.Observe(latency.Seconds())
	if code == 0 {
		e.errors.WithLabelValues(errKind).Inc()
		return
	}
	e.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	for _, h := range hops {
		e.hops.WithLabelValues(h.Service, h.Version).Inc()
	}
}

// Handler serves the registry in the Prometheus text format.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})
}
