// Package telemetry builds a workload's metrics registry, tracer provider and logger.
// Nothing here is global: each workload (and each test) gets its own instances.
package telemetry

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// UnmatchedRoute is the single route label for requests no route matched, so path
// scans cannot create unbounded label values.
const UnmatchedRoute = "unmatched"

// Metrics holds a workload's collectors on its own registry.
type Metrics struct {
	Registry *prometheus.Registry
	server   *prometheus.HistogramVec
	client   *prometheus.HistogramVec
	attempts *prometheus.CounterVec
	faults   *prometheus.CounterVec

	// Resolved children, so a request costs one map lookup per series instead of
	// label hashing under the vector's lock. Keys are bounded: routes are patterns,
	// methods are normalised, codes are 100–999.
	serverObs  sync.Map              // serverKey → prometheus.Observer
	clientObs  sync.Map              // clientKey → prometheus.Observer
	attemptCnt [6]prometheus.Counter // none, 1, 2, 3, 4, 5+
}

type serverKey struct {
	route, method string
	code          int
}

type clientKey struct {
	upstream string
	code     int
}

// latencyBuckets spans sub-millisecond loopback calls up to fault-injected delays.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics registers the workload's metrics. service and version are constant labels
// on every series, which is how dashboards split traffic by version.
func NewMetrics(service, version string) *Metrics {
	reg := prometheus.NewRegistry()
	constLabels := prometheus.Labels{"service": service, "version": version}
	m := &Metrics{
		Registry: reg,
		server: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "meshdemo_http_server_request_duration_seconds",
			Help:        "Inbound request latency by route pattern, method and status code.",
			ConstLabels: constLabels,
			Buckets:     latencyBuckets,
		}, []string{"route", "method", "code"}),
		client: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "meshdemo_http_client_request_duration_seconds",
			Help:        "Outbound request latency by upstream and status code (502/504 for transport failures, 499 when the caller went away).",
			ConstLabels: constLabels,
			Buckets:     latencyBuckets,
		}, []string{"upstream", "code"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "meshdemo_envoy_attempts_total",
			Help:        "Inbound requests by Envoy's x-envoy-attempt-count (\"none\" when absent, \"5+\" above 4): retries made visible.",
			ConstLabels: constLabels,
		}, []string{"attempt"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "meshdemo_faults_injected_total",
			Help:        "App-level faults injected, by kind.",
			ConstLabels: constLabels,
		}, []string{"kind"}),
	}
	for i := range m.attemptCnt {
		m.attemptCnt[i] = m.attempts.WithLabelValues(attemptLabel(i))
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "meshdemo_build_info",
		Help:        "Always 1; carries the workload's service, version and Go version.",
		ConstLabels: prometheus.Labels{"service": service, "version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.server, m.client, m.attempts, m.faults, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text or protobuf format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveServer records one inbound request. Methods outside the standard set are
// recorded as "_OTHER" (OpenTelemetry's convention), so made-up methods cannot grow the
// series without bound.
func (m *Metrics) ObserveServer(route, method string, code int, seconds float64) {
	k := serverKey{route: route, method: methodLabel(method), code: code}
	o, ok := m.serverObs.Load(k)
	if !ok {
		o, _ = m.serverObs.LoadOrStore(k, m.server.WithLabelValues(k.route, k.method, statusLabel(code)))
	}
	o.(prometheus.Observer).Observe(seconds)
}

// ObserveClient records one outbound request.
func (m *Metrics) ObserveClient(upstream string, code int, seconds float64) {
	k := clientKey{upstream: upstream, code: code}
	o, ok := m.clientObs.Load(k)
	if !ok {
		o, _ = m.clientObs.LoadOrStore(k, m.client.WithLabelValues(upstream, statusLabel(code)))
	}
	o.(prometheus.Observer).Observe(seconds)
}

// CountAttempt records Envoy's attempt count as the request arrived (0 = header absent).
func (m *Metrics) CountAttempt(attempt int) {
	m.attemptCnt[min(max(attempt, 0), len(m.attemptCnt)-1)].Inc()
}

func attemptLabel(i int) string {
	switch {
	case i == 0:
		return "none"
	case i >= 5:
		return "5+"
	}
	return strconv.Itoa(i)
}

// methodLabel maps a request method to its metric label.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "_OTHER"
}

// CountFault records one injected fault.
func (m *Metrics) CountFault(kind string) { m.faults.WithLabelValues(kind).Inc() }

func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	}
	return strconv.Itoa(code)
}
