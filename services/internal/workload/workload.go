// Package workload is the start-up and shutdown every meshdemo workload shares: parse
// and validate config, build logger/metrics/tracing/faults, serve the public and admin
// routers, drain on SIGTERM. A workload's run.go only names itself and builds its
// handler from a Kit.
package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/internal/config"
	"github.com/meshdemo/meshdemo/services/internal/faults"
	"github.com/meshdemo/meshdemo/services/internal/health"
	"github.com/meshdemo/meshdemo/services/internal/httpclient"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/propagation"
	"github.com/meshdemo/meshdemo/services/internal/telemetry"
	"github.com/meshdemo/meshdemo/services/pathheader"
)

// Settings is implemented by each workload's config struct (which embeds
// config.Common and faults.Config).
type Settings interface {
	Shared() (*config.Common, *faults.Config)
	Validate() error
}

// Base is the configuration every workload has; a workload's config embeds it and
// adds its upstream URLs (overriding Validate to check them too).
type Base struct {
	config.Common
	faults.Config
}

// Shared implements Settings.
func (b *Base) Shared() (*config.Common, *faults.Config) { return &b.Common, &b.Config }

// Validate implements Settings.
func (b *Base) Validate() error { return errors.Join(b.Common.Validate(), b.Config.Validate()) }

// Kit is what a workload's NewServer gets: the shared pieces, built once.
type Kit struct {
	Common   config.Common
	Logger   *slog.Logger
	Metrics  *telemetry.Metrics
	Tracing  *telemetry.Tracing
	Faults   *faults.Injector
	Health   *health.State
	Observer *httpserver.Observer
}

// Router returns the public router with probes and the observer middleware; the
// workload adds its routes, wrapping them in k.Faults.Middleware.
func (k *Kit) Router() chi.Router {
	id := health.Identity{Service: k.Common.ServiceName, Version: k.Common.ServiceVersion, Instance: k.Common.Instance}
	return httpserver.NewRouter(k.Observer, httpserver.Probes{
		State: k.Health, Identity: id,
		Extra: func() map[string]any { return map[string]any{"sick": k.Faults.Sick()} },
	})
}

// Upstream builds a client for one upstream with the shared timeout and telemetry.
func (k *Kit) Upstream(name, baseURL string) (*httpclient.Upstream, error) {
	return httpclient.New(httpclient.Options{
		Name: name, BaseURL: baseURL, Timeout: k.Common.UpstreamTimeout,
		Metrics: k.Metrics, Logger: k.Logger,
		Tracer:  k.Tracing.Provider.Tracer("meshdemo/httpclient"),
		TextMap: k.Tracing.Propagator, Tracing: k.Tracing.Enabled,
		UserAgent: "meshdemo-" + k.Common.ServiceName,
	})
}

// Spec describes one workload to Main.
type Spec struct {
	Name     string   // default SERVICE_NAME
	Settings Settings // pointer to the workload's zero config
	// NewServer builds the public handler.
	NewServer func(k *Kit) (http.Handler, error)
	// OnListen, when set, learns the bound addresses (tests).
	OnListen func(public, admin net.Addr)
	// GRPC, when set, opens the workload's gRPC listener (grpcworkload.Serve), served
	// under the same lifecycle. A function, so that workloads without gRPC do not link it.
	GRPC func(k *Kit) (httpserver.Extra, error)
}

// Main is run(...) for every workload. Instead of serving, for container images that have
// no curl: args[1] == "healthcheck" probes the local /readyz, and "get URL" makes one GET
// from the workload's own container (see get).
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, spec Spec) error {
	if len(args) > 1 && args[1] == "get" { // needs no configuration: runs in any pod
		return get(ctx, spec.Name, args[2:], stdout, stderr)
	}
	// A value that does not parse is reported with everything Validate finds in the
	// rest (Parse leaves defaults in the fields that failed), in one go.
	parseErr := config.Parse(getenv, spec.Settings)
	common, fcfg := spec.Settings.Shared()
	if common.ServiceName == "" {
		common.ServiceName = spec.Name
	}
	if common.Instance == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
		common.Instance = h
	}
	if parseErr != nil {
		return fmt.Errorf("invalid configuration:\n%w", errors.Join(parseErr, spec.Settings.Validate()))
	}
	if len(args) > 1 {
		if args[1] == "healthcheck" {
			return healthcheck(ctx, common.Port, stdout)
		}
		return fmt.Errorf("unknown argument %q (usage: %s [healthcheck | get [-H 'Name: value']... URL])", args[1], spec.Name)
	}
	if err := spec.Settings.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}

	setGCPercent(getenv)
	logOut := telemetry.NewBatchWriter(stdout, 100*time.Millisecond)
	defer logOut.Close()
	k, err := NewKit(*common, *fcfg, logOut)
	if err != nil {
		return err
	}
	public, err := spec.NewServer(k)
	if err != nil {
		return err
	}
	var extra []httpserver.Extra
	if spec.GRPC != nil {
		srv, err := spec.GRPC(k)
		if err != nil {
			return err
		}
		extra = append(extra, srv)
	}
	admin := httpserver.NewAdminRouter(k.Metrics.Handler(), k.Faults.AdminRoutes)
	// A request may sleep for a fault and then wait for its upstream: the write
	// timeout must outlast both, or the server cuts the demo short.
	write := common.UpstreamTimeout + fcfg.MaxDelay + 5*time.Second
	return httpserver.Serve(ctx, httpserver.Lifecycle{
		PublicAddr: net.JoinHostPort(common.ListenHost, strconv.Itoa(common.Port)),
		AdminAddr:  net.JoinHostPort(common.ListenHost, strconv.Itoa(common.AdminPort)),
		Public:     public,
		Admin:      admin,
		Timeouts: httpserver.Timeouts{
			ReadHeader: 5 * time.Second, Read: 30 * time.Second, Write: write, Idle: common.IdleTimeout,
			MaxHeaderBytes: 64 << 10,
		},
		State:           k.Health,
		DrainDelay:      common.DrainDelay,
		ShutdownTimeout: common.ShutdownTimeout,
		Logger:          k.Logger,
		OnListen:        spec.OnListen,
		Flush:           k.Tracing.Shutdown,
		Extra:           extra,
	})
}

// NewKit builds the shared pieces from validated config; logs go to logOut.
func NewKit(common config.Common, fcfg faults.Config, logOut io.Writer) (*Kit, error) {
	logOut = telemetry.SyncWriter(logOut) // the logger and the access log share it
	logger := telemetry.NewLogger(logOut, common.LogLevel, common.ServiceName, common.ServiceVersion, common.Instance)
	metrics := telemetry.NewMetrics(common.ServiceName, common.ServiceVersion)
	tracing, err := telemetry.NewTracing(telemetry.TracingConfig{
		Service: common.ServiceName, Version: common.ServiceVersion, Instance: common.Instance, Endpoint: common.OTLPEndpoint,
	})
	if err != nil {
		return nil, err
	}
	inj, err := faults.New(fcfg, common.ServiceName,
		faults.WithLogger(logger),
		faults.WithOnInject(func(_ *http.Request, in faults.Injection) { metrics.CountFault(string(in.Kind)) }))
	if err != nil {
		return nil, err
	}
	return &Kit{
		Common: common, Logger: logger, Metrics: metrics, Tracing: tracing, Faults: inj, Health: &health.State{},
		Observer: &httpserver.Observer{
			Identity:   pathheader.Hop{Service: common.ServiceName, Version: common.ServiceVersion, Instance: common.Instance},
			Logger:     logger,
			Access:     telemetry.NewAccessLog(logOut, common.LogLevel, common.ServiceName, common.ServiceVersion, common.Instance),
			Metrics:    metrics,
			Propagator: propagation.New(common.PropagateHeaders),
			Tracer:     tracing.Provider.Tracer("meshdemo/httpserver"),
			TextMap:    tracing.Propagator,
			Tracing:    tracing.Enabled,
		},
	}, nil
}

func healthcheck(ctx context.Context, port int, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %d %s", url, resp.StatusCode, body)
	if resp.StatusCode != http.StatusOK {
		return errors.New("not ready")
	}
	return nil
}
