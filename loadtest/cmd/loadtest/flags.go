package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/meshdemo/meshdemo/loadtest/internal/engine"
	"github.com/meshdemo/meshdemo/loadtest/internal/expect"
)

// options is everything the command line says.
type options struct {
	engine      engine.Config
	checks      expect.Checks
	jsonOut     string
	htmlOut     string
	metricsAddr string
	progress    time.Duration
	// ui is the live page's listen address; expectRaw and statusRaw are the expectations
	// as written, to fill the page's form.
	ui        string
	expectRaw []string
	statusRaw []string
}

// Defaults when neither a rate nor a concurrency, neither a duration nor a request
// count is given.
const (
	defaultRate     = 50
	defaultDuration = 30 * time.Second
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

const usageHead = `Usage: loadtest [flags] URL
       loadtest --ui 127.0.0.1:8089 [flags] [URL]

Sends HTTP load to URL and reports throughput, latency, status codes, errors and the
version of every hop named in the X-Meshdemo-Path response header; checks expectations
and exits 0 when all hold, 1 when one fails, 2 on bad usage or an unreachable target.
Every flag can also be set from the environment as LOADTEST_<NAME> (dashes become
underscores; repeated flags take ';'-separated values), e.g. LOADTEST_RATE=100.

With --ui it serves a live page (and its event stream at /events) until interrupted;
a URL given too starts a run at once, which lasts until stopped unless --duration or
--requests says otherwise.

Examples:
  loadtest --host client.meshdemo --rate 100 --duration 60s \
           --expect server2=v1:80,v2:20 http://127.0.0.1:8080/client/server1
  loadtest -H 'X-Meshdemo-Fault: server1=abort:503@50' --requests 2000 \
           --expect-status 503:50 --json out/fault.json http://127.0.0.1:8080/client/server1
  loadtest --ui 127.0.0.1:8089 --expect server2=v1:80,v2:20 http://127.0.0.1:8080/client/server1

Flags:
`

// parseFlags reads args (and LOADTEST_* variables through getenv) into options.
// It returns flag.ErrHelp after printing usage to stdout when help was asked for.
func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		url          = fs.String("url", "", "target URL (or give it as the only argument)")
		host         = fs.String("host", "", "Host header, e.g. client.meshdemo for the Istio ingress gateway")
		headers      listFlag
		rate         = fs.Float64("rate", 0, fmt.Sprintf("open model: requests per second, kept whatever the latency (default %d when --concurrency is not set)", defaultRate))
		concurrency  = fs.Int("concurrency", 0, "closed model: connections sending back to back")
		maxInFlight  = fs.Int("max-inflight", 1000, "open model: at most this many requests in flight (connections)")
		duration     = fs.Duration("duration", 0, fmt.Sprintf("how long to send (default %s when --requests is not set)", defaultDuration))
		requests     = fs.Int64("requests", 0, "send exactly this many requests instead of running for a duration")
		timeout      = fs.Duration("timeout", 20*time.Second, "per-request timeout (above the services' 15s upstream timeout)")
		splits       listFlag
		statuses     listFlag
		maxP99       = fs.Duration("max-p99", 0, "fail when the 99th percentile latency exceeds this")
		alpha        = fs.Float64("alpha", expect.Defaults.Alpha, "significance level of the split and status tests: the chance a correct mesh fails a check")
		jsonOut      = fs.String("json", "", "write the JSON summary to this file")
		htmlOut      = fs.String("html", "", "write the self-contained HTML report to this file")
		metricsAddr  = fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics while running, e.g. :9102")
		progressEach = fs.Duration("progress", time.Second, "print progress to stderr this often (0: never; every second with --ui)")
		ui           = fs.String("ui", "", "serve the live page at http://ADDR/ until interrupted, e.g. 127.0.0.1:8089 (loopback unless you mean otherwise)")
	)
	fs.Var(&headers, "H", "extra request header \"Name: value\" (repeatable)")
	fs.Var(&headers, "header", "same as -H")
	fs.Var(&splits, "expect", "expected version split of a hop, service=version:weight,... e.g. server2=v1:80,v2:20 (repeatable)")
	fs.Var(&statuses, "expect-status", "expected share of a status code in percent, code:percent[,...] e.g. 503:50 (repeatable)")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "header" {
			return // -H carries LOADTEST_H; one variable per list
		}
		name := "LOADTEST_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		if v == "" {
			return
		}
		vals := []string{v}
		if _, isList := f.Value.(*listFlag); isList {
			vals = strings.Split(v, ";")
		}
		for _, x := range vals {
			if err := fs.Set(f.Name, strings.TrimSpace(x)); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", name, x, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return o, err
		}
		return o, err
	}
	switch fs.NArg() {
	case 0:
	case 1:
		if *url != "" {
			return o, errors.New("the URL was given both as --url and as an argument")
		}
		*url = fs.Arg(0)
	default:
		return o, fmt.Errorf("one URL expected, got %d arguments: %s", fs.NArg(), strings.Join(fs.Args(), " "))
	}
	if *url == "" && *ui == "" {
		return o, errors.New("no target URL")
	}
	if *rate < 0 || *concurrency < 0 || *requests < 0 || *duration < 0 {
		return o, errors.New("--rate, --concurrency, --requests and --duration cannot be negative")
	}
	if *rate == 0 && *concurrency == 0 {
		*rate = defaultRate
	}
	if *duration == 0 && *requests == 0 && *ui == "" {
		*duration = defaultDuration // with --ui: until stopped
	}
	if *alpha <= 0 || *alpha >= 0.5 {
		return o, fmt.Errorf("--alpha %g: want a significance level in (0, 0.5), e.g. 0.001", *alpha)
	}
	if *progressEach < 0 {
		return o, errors.New("--progress cannot be negative")
	}
	o.engine = engine.Config{
		URL: *url, Host: *host, Headers: headers,
		Rate: *rate, MaxInFlight: *maxInFlight, Concurrency: *concurrency,
		Duration: *duration, Requests: *requests, Timeout: *timeout,
	}
	if *url != "" {
		if err := o.engine.Validate(); err != nil {
			return o, err
		}
	}
	for _, s := range splits {
		sp, err := expect.ParseSplit(s)
		if err != nil {
			return o, err
		}
		o.checks.Splits = append(o.checks.Splits, sp)
	}
	for _, s := range statuses {
		st, err := expect.ParseStatus(s)
		if err != nil {
			return o, err
		}
		o.checks.Statuses = append(o.checks.Statuses, st...)
	}
	o.checks.MaxP99 = *maxP99
	o.checks.Settings = expect.Defaults
	o.checks.Settings.Alpha = *alpha
	o.jsonOut, o.htmlOut, o.metricsAddr, o.progress = *jsonOut, *htmlOut, *metricsAddr, *progressEach
	o.ui, o.expectRaw, o.statusRaw = *ui, splits, statuses
	return o, nil
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, usageHead)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
