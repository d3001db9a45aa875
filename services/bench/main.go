// Command bench is `make bench`: it starts the real client → server1 → server2 chain
// and a minimal hand-written three-hop chain (./minimal) as separate processes on
// 127.0.0.1, loads each with the same closed-loop concurrency in interleaved rounds,
// and prints throughput, latency, CPU per request, RSS after load and time from exec
// to ready, each next to its target. It is a benchmark, not a test: it exits 0 when a
// target is missed (and non-zero only when it could not measure).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// Targets: what a hand-written chain costs is the yardstick, and the kit may add at most this
// much over it (docs/benchmark.md, "What one run does", lists them with the figure each uses).
const (
	targetThroughput = 0.8      // chain req/s ≥ 0.8 × minimal
	targetP99        = 1.5      // chain p99 ≤ 1.5 × minimal
	targetRSS        = 25 << 20 // per workload, after load
	targetReady      = 100 * time.Millisecond
)

type options struct {
	bin         string
	minimal     string
	workers     int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	warn        bool
	readyTrials int
	timeout     time.Duration
	keepLogs    bool
	env         envList
	perf        string
	grpc        bool
}

// envList collects repeated -env KEY=VALUE flags.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory holding client, server1 and server2")
	fs.StringVar(&o.minimal, "minimal", "", "the minimal chain binary (default BIN/bench-minimal)")
	fs.IntVar(&o.workers, "c", 32, "concurrent closed-loop workers")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured load per chain (split over the rounds)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load per chain before the rounds")
	fs.IntVar(&o.rounds, "rounds", 10, "interleaved rounds; each chain gets d/rounds per round")
	fs.BoolVar(&o.warn, "warn", true, "also measure the real chain with LOG_LEVEL=warn")
	fs.IntVar(&o.readyTrials, "ready-trials", 5, "extra standalone starts per workload for the exec-to-ready time")
	fs.DurationVar(&o.timeout, "timeout", 115*time.Second, "bound on the whole run")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the workloads' log directory")
	fs.StringVar(&o.perf, "perf", "", "record `perf record -g` of every chain process during the measured rounds into this file")
	fs.BoolVar(&o.grpc, "grpc", false, "measure the chain over gRPC (GET /client/grpc) against a minimal grpc-go chain")
	fs.Var(&o.env, "env", "extra KEY=VALUE for the real chain's processes, repeatable (e.g. -env GOGC=200)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.minimal == "" {
		o.minimal = filepath.Join(o.bin, "bench-minimal")
	}
	if o.workers < 1 || o.rounds < 1 || o.duration <= 0 {
		return fmt.Errorf("need -c ≥ 1, -rounds ≥ 1 and -d > 0")
	}
	for _, b := range []string{filepath.Join(o.bin, "client"), filepath.Join(o.bin, "server1"), filepath.Join(o.bin, "server2"), o.minimal} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (run `make build` and build ./bench/minimal, or use `make bench`)", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	logDir, err := os.MkdirTemp("", "meshdemo-bench-")
	if err != nil {
		return err
	}
	if o.keepLogs {
		fmt.Fprintf(out, "logs in %s\n", logDir)
	} else {
		defer os.RemoveAll(logDir)
	}

	fmt.Fprintf(out, "meshdemo bench · %s · %d CPUs · load average %s · %s\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), loadavg(), runtime.Version())
	if len(o.env) > 0 {
		fmt.Fprintf(out, "real chain runs with extra environment: %s\n", o.env.String())
	}
	fmt.Fprintf(out, "GC: real chain %s, minimal chain GOGC=100 (the runtime's default)\n", realGC(o.env))
	if o.grpc {
		fmt.Fprintln(out, "gRPC mode: GET /client/grpc, client → server1 → server2 over gRPC (one connection per hop), against plain grpc-go hops")
	}
	fmt.Fprintf(out, "three hops on 127.0.0.1 · %d closed-loop workers (in this process) · %s warm-up, then %s measured per chain in %d interleaved rounds\n\n",
		o.workers, o.warmup, o.duration, o.rounds)

	// Start every chain first, so the exec-to-ready figures come from the measured
	// processes too; an idle chain costs the others nothing.
	var chains []*chain
	defer func() {
		for _, c := range chains {
			c.stop()
		}
	}()
	levels := []string{"info"}
	if o.warn {
		levels = append(levels, "warn")
	}
	mini, err := retry(func() (*chain, error) { return startMinimal(ctx, o.minimal, logDir, "minimal", o.grpc) })
	if err != nil {
		return err
	}
	chains = append(chains, mini)
	for _, lvl := range levels {
		c, err := retry(func() (*chain, error) { return startReal(ctx, o.bin, logDir, lvl, "bench-"+lvl, o.env, o.grpc) })
		if err != nil {
			return err
		}
		chains = append(chains, c)
	}

	client := newLoadClient(o.workers)
	for _, c := range chains {
		body, path, err := probe(ctx, client, c.url)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		c.wantLen = len(body)
		if c.real && strings.Count(path, ",") != 2 {
			return fmt.Errorf("%s: path header %q does not name three hops", c.name, path)
		}
	}

	for _, c := range chains {
		s := load(ctx, client, c.url, o.workers, o.warmup, c.wantLen)
		c.sent += s.ok + s.errs
	}
	var rec *exec.Cmd
	if o.perf != "" {
		var pids []string
		for _, c := range chains {
			for _, p := range c.procs {
				pids = append(pids, strconv.Itoa(p.cmd.Process.Pid))
			}
		}
		rec = exec.Command("perf", "record", "-F", "999", "-g", "-o", o.perf, "-p", strings.Join(pids, ","))
		rec.Stdout, rec.Stderr = io.Discard, os.Stderr
		if err := rec.Start(); err != nil {
			return fmt.Errorf("perf: %w", err)
		}
		time.Sleep(300 * time.Millisecond) // let perf attach before the rounds
	}
	per := o.duration / time.Duration(o.rounds)
	for r := range o.rounds {
		for i := range chains {
			c := chains[(i+r)%len(chains)] // rotate who goes first
			before, err := c.cpu()
			if err != nil {
				return err
			}
			self0 := selfCPU()
			s := load(ctx, client, c.url, o.workers, per, c.wantLen)
			c.loadgen += selfCPU() - self0
			after, err := c.cpu()
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return fmt.Errorf("run cut short: %w", ctx.Err())
			}
			c.add(s, before, after)
		}
	}
	if rec != nil {
		_ = rec.Process.Signal(os.Interrupt)
		// perf may report the interrupt as its exit status; the file is complete either way.
		if err := rec.Wait(); err != nil && rec.ProcessState.ExitCode() != -1 {
			fmt.Fprintf(out, "perf record: %v\n", err)
		}
	}
	for _, c := range chains {
		if err := c.measureMemory(); err != nil {
			return err
		}
	}

	// Exec-to-ready on more starts than the three chains gave.
	ready := map[string][]time.Duration{}
	for _, c := range chains {
		for _, p := range c.procs {
			ready[c.kind+"/"+p.name] = append(ready[c.kind+"/"+p.name], p.ready)
		}
	}
	for t := range o.readyTrials {
		for _, kind := range []string{"real", "minimal"} {
			var c *chain
			var err error
			if kind == "real" {
				c, err = retry(func() (*chain, error) {
					return startReal(ctx, o.bin, logDir, "info", "trial-"+strconv.Itoa(t), o.env, o.grpc)
				})
			} else {
				c, err = retry(func() (*chain, error) { return startMinimal(ctx, o.minimal, logDir, "trial-"+strconv.Itoa(t), o.grpc) })
			}
			if err != nil {
				return err
			}
			for _, p := range c.procs {
				ready[kind+"/"+p.name] = append(ready[kind+"/"+p.name], p.ready)
			}
			c.stop()
		}
	}

	report(out, o, chains, ready)
	if o.perf != "" {
		fmt.Fprintf(out, "\nperf samples (999 Hz, all chains, measured rounds only) in %s; requests per chain: ", o.perf)
		for i, c := range chains {
			if i > 0 {
				fmt.Fprint(out, ", ")
			}
			fmt.Fprintf(out, "%s %d", c.name, c.ok)
		}
		fmt.Fprintf(out, "\n  perf report -i %s --children --sort sym --pid PID   (PIDs: perf report -i %s --sort pid,comm)\n", o.perf, o.perf)
	}
	fmt.Fprintf(out, "\nload average after: %s\n", loadavg())
	return nil
}

// chain is three processes client, server1, server2 and what was measured on them.
type chain struct {
	name    string // shown in the report
	kind    string // "real" or "minimal"
	real    bool
	procs   []*proc // client, server1, server2
	url     string
	wantLen int

	sent     int // every request, warm-up included (for log bytes per request)
	ok, errs int
	elapsed  time.Duration
	lat      []time.Duration
	cpuUsed  []time.Duration // per process, during measured load only
	loadgen  time.Duration   // this process's CPU while loading the chain
	rounds   []roundFig      // per interleaved round, in round order
	firstErr string
	rss      []int64
	peak     []int64
}

func (c *chain) stop() {
	for _, p := range c.procs {
		p.stop()
	}
	c.procs = c.procs[:0:0]
}

func (c *chain) cpu() ([]time.Duration, error) {
	v := make([]time.Duration, len(c.procs))
	for i, p := range c.procs {
		t, err := p.cpu()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.name, p.name, err)
		}
		v[i] = t
	}
	return v, nil
}

// roundFig is one chain's figures in one round; neighbours in time share the
// machine's background load, so ratios are taken round by round too.
type roundFig struct{ rps, p99 float64 }

func (c *chain) add(s slice, before, after []time.Duration) {
	lat := slices.Clone(s.lat)
	slices.Sort(lat)
	c.rounds = append(c.rounds, roundFig{rps: float64(s.ok) / s.elapsed.Seconds(), p99: ms(quantile(lat, 0.99))})
	c.ok += s.ok
	c.errs += s.errs
	c.sent += s.ok + s.errs
	c.elapsed += s.elapsed
	c.lat = append(c.lat, s.lat...)
	if c.firstErr == "" {
		c.firstErr = s.firstErr
	}
	if c.cpuUsed == nil {
		c.cpuUsed = make([]time.Duration, len(c.procs))
	}
	for i := range c.procs {
		c.cpuUsed[i] += after[i] - before[i]
	}
}

func (c *chain) measureMemory() error {
	for _, p := range c.procs {
		rss, peak, err := p.memory()
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.name, p.name, err)
		}
		c.rss = append(c.rss, rss)
		c.peak = append(c.peak, peak)
	}
	return nil
}

// retry starts a chain again on fresh ports when a start fails: the free ports are
// released before the workloads bind them, and another program may take one meanwhile.
func retry(start func() (*chain, error)) (*chain, error) {
	var err error
	for range 3 {
		var c *chain
		if c, err = start(); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// realGC says which GC percent the real chain runs with: the kit's default unless -env
// sets GOGC (the processes get no other environment).
func realGC(env envList) string {
	gc := fmt.Sprintf("GOGC=%d (the kit's default; -env GOGC=100 for the runtime's)", workload.DefaultGCPercent)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOGC="); ok {
			gc = "GOGC=" + v + " (-env)"
		}
	}
	return gc
}

// startReal starts server2, server1 and client (in that order) from bin.
func startReal(ctx context.Context, bin, logDir, level, tag string, extra []string, overGRPC bool) (*chain, error) {
	ports, err := freePorts(9) // public, admin, gRPC
	if err != nil {
		return nil, err
	}
	c := &chain{name: "chain LOG_LEVEL=" + level, kind: "real", real: true}
	if overGRPC {
		c.name = "gRPC chain LOG_LEVEL=" + level
	}
	grpcAddr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[6+i]) }
	names := []string{"client", "server1", "server2"}
	url := func(i int) string { return "http://127.0.0.1:" + strconv.Itoa(ports[i]) }
	for i := 2; i >= 0; i-- {
		env := []string{
			"PORT=" + strconv.Itoa(ports[i]),
			"ADMIN_PORT=" + strconv.Itoa(ports[3+i]),
			"LISTEN_HOST=127.0.0.1",
			"LOG_LEVEL=" + level,
			"DRAIN_DELAY=0s",
			"HOSTNAME=" + names[i] + "-" + tag,
			"SERVER1_URL=" + url(1),
			"SERVER2_URL=" + url(2),
			"USER_SERVICE_URL=http://127.0.0.1:9", // unused by the chain
			"GRPC_PORT=" + strconv.Itoa(ports[6+i]),
			"SERVER1_GRPC_ADDR=" + grpcAddr(1),
			"SERVER2_GRPC_ADDR=" + grpcAddr(2),
		}
		env = append(env, extra...)
		p, err := start(ctx, spec{name: names[i], path: filepath.Join(bin, names[i]), env: env, port: ports[i]},
			filepath.Join(logDir, names[i]+"-"+tag+"-"+level+".log"))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append([]*proc{p}, c.procs...)
	}
	c.url = url(0) + "/client/server1"
	if overGRPC {
		c.url = url(0) + "/client/grpc"
	}
	return c, nil
}

// startMinimal starts the hand-written chain: the same binary in three roles.
func startMinimal(ctx context.Context, path, logDir, tag string, overGRPC bool) (*chain, error) {
	ports, err := freePorts(5) // public, gRPC of server1 and server2
	if err != nil {
		return nil, err
	}
	c := &chain{name: "minimal net/http", kind: "minimal"}
	if overGRPC {
		c.name = "minimal grpc-go"
	}
	grpcAddr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[2+i]) }
	names := []string{"client", "server1", "server2"}
	url := func(i int) string { return "http://127.0.0.1:" + strconv.Itoa(ports[i]) }
	for i := 2; i >= 0; i-- {
		args := []string{"-role", names[i], "-addr", "127.0.0.1:" + strconv.Itoa(ports[i]), "-instance", "server2-" + tag}
		switch {
		case overGRPC && i < 2:
			args = append(args, "-grpc-upstream", grpcAddr(i+1))
		case i < 2:
			args = append(args, "-upstream", url(i+1))
		}
		if overGRPC && i > 0 {
			args = append(args, "-grpc-addr", grpcAddr(i))
		}
		// An empty environment, like the real chain's: a GOGC in the caller's shell
		// must not reach one chain only.
		p, err := start(ctx, spec{name: names[i], path: path, args: args, env: []string{}, port: ports[i]},
			filepath.Join(logDir, "minimal-"+names[i]+"-"+tag+".log"))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append([]*proc{p}, c.procs...)
	}
	c.url = url(0) + "/client/server1"
	if overGRPC {
		c.url = url(0) + "/client/grpc"
	}
	return c, nil
}

func report(out io.Writer, o options, chains []*chain, ready map[string][]time.Duration) {
	type figures struct{ rps, p50, p90, p99, cpu float64 }
	fig := make([]figures, len(chains))
	fmt.Fprintf(out, "%-22s %9s %9s %9s %9s %12s %8s %s\n", "chain", "req/s", "p50", "p90", "p99", "CPU/req", "errors", "CPU/req per hop (client, server1, server2)")
	for i, c := range chains {
		slices.Sort(c.lat)
		var total time.Duration
		hops := make([]string, len(c.cpuUsed))
		for j, t := range c.cpuUsed {
			total += t
			hops[j] = fmtMicros(perReq(t, c.ok))
		}
		fig[i] = figures{
			rps: float64(c.ok) / c.elapsed.Seconds(),
			p50: ms(quantile(c.lat, 0.50)), p90: ms(quantile(c.lat, 0.90)), p99: ms(quantile(c.lat, 0.99)),
			cpu: perReq(total, c.ok),
		}
		fmt.Fprintf(out, "%-22s %9.0f %7.2fms %7.2fms %7.2fms %12s %8d %s\n",
			c.name, fig[i].rps, fig[i].p50, fig[i].p90, fig[i].p99, fmtMicros(fig[i].cpu), c.errs, strings.Join(hops, ", "))
		if c.firstErr != "" {
			fmt.Fprintf(out, "%22s first error: %s\n", "", c.firstErr)
		}
	}
	fmt.Fprintln(out, "(CPU/req = utime+stime of the three processes from /proc/PID/stat over the measured load, 10 ms ticks)")
	gen := make([]string, len(chains))
	for i, c := range chains {
		gen[i] = c.name + " " + fmtMicros(perReq(c.loadgen, c.ok))
	}
	fmt.Fprintf(out, "(load generator CPU/req, not included above: %s)\n", strings.Join(gen, ", "))

	fmt.Fprintf(out, "\nratios to the minimal chain: median of the %d per-round ratios decides (pooled ratio over all rounds in brackets)\n", o.rounds)
	for i, c := range chains[1:] {
		f := fig[i+1]
		var tr, pr []float64
		for r := range c.rounds {
			tr = append(tr, c.rounds[r].rps/chains[0].rounds[r].rps)
			pr = append(pr, c.rounds[r].p99/chains[0].rounds[r].p99)
		}
		tm, pm := median(tr), median(pr)
		fmt.Fprintf(out, "  %-22s throughput %.2f× [%.2f×] (target ≥ %.1f×) %s   p99 %.2f× [%.2f×] (target ≤ %.1f×) %s   CPU/req %.2f×\n",
			c.name, tm, f.rps/fig[0].rps, targetThroughput, verdict(tm >= targetThroughput),
			pm, f.p99/fig[0].p99, targetP99, verdict(pm <= targetP99), f.cpu/fig[0].cpu)
	}

	fmt.Fprintf(out, "\nRSS after load (VmRSS; peak VmHWM), target ≤ %d MiB per workload\n", targetRSS>>20)
	for _, c := range chains {
		for j, p := range c.procs {
			v := ""
			if c.real {
				v = verdict(c.rss[j] <= targetRSS)
			}
			fmt.Fprintf(out, "  %-22s %-8s %6.1f MiB (peak %5.1f MiB) %s\n", c.name, p.name, mib(c.rss[j]), mib(c.peak[j]), v)
		}
	}
	for _, c := range chains {
		if !c.real {
			continue
		}
		var size int64
		for _, p := range c.procs {
			if st, err := os.Stat(p.log); err == nil {
				size += st.Size()
			}
		}
		fmt.Fprintf(out, "  %-22s log output %.0f bytes per request (all three hops)\n", c.name, float64(size)/float64(max(c.sent, 1)))
	}

	fmt.Fprintf(out, "\nexec to ready (poll /readyz every 1 ms), target ≤ %d ms; the median decides\n", targetReady.Milliseconds())
	for _, kind := range []string{"real", "minimal"} {
		for _, name := range []string{"client", "server1", "server2"} {
			d := slices.Clone(ready[kind+"/"+name])
			slices.Sort(d)
			med := quantile(d, 0.5)
			v := ""
			if kind == "real" {
				v = verdict(med <= targetReady)
			}
			fmt.Fprintf(out, "  %-8s %-8s median %6.1f ms  min %6.1f ms  max %6.1f ms  (%d starts) %s\n",
				kind, name, ms(med), ms(d[0]), ms(d[len(d)-1]), len(d), v)
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func perReq(t time.Duration, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return float64(t.Microseconds()) / float64(n)
}

func fmtMicros(us float64) string { return fmt.Sprintf("%.0fµs", us) }
func ms(d time.Duration) float64  { return float64(d.Microseconds()) / 1000 }
func mib(b int64) float64         { return float64(b) / (1 << 20) }

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
