// Command loadtest-bench measures loadtest's own overhead: on loopback, against a
// trivial Go server in a separate process, it runs wrk, loadtest, and loadtest --ui
// with a subscriber reading /events, in turns at the same concurrency, and prints the
// request rates and two ratios: loadtest ÷ wrk (goal >= 0.6) and loadtest --ui ÷
// loadtest (goal >= 0.95). Then it simulates a day-long live run in a child process
// and prints its memory every few hours (goal: flat after the first hour). Any goal
// missed makes it exit 1.
//
//	loadtest-bench --loadtest bin/loadtest [--concurrency 32] [--duration 3s] [--rounds 5] [--hours 24]
//
// Run as "loadtest-bench serve" it is the trivial server (prints its address); as
// "loadtest-bench simulate" the day-long simulation.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Goals: loadtest's rate against wrk's, and loadtest's rate with the live page and a
// subscriber against its rate without.
const (
	goal   = 0.6
	goalUI = 0.95
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "serve" {
		return serve(ctx, stdout)
	}
	if len(args) > 0 && args[0] == "simulate" {
		return simulate(args[1:], stdout)
	}
	fs := flag.NewFlagSet("loadtest-bench", flag.ContinueOnError)
	loadtest := fs.String("loadtest", "bin/loadtest", "loadtest binary")
	conc := fs.Int("concurrency", 32, "connections, the same for wrk and loadtest")
	dur := fs.Duration("duration", 3*time.Second, "length of each measurement")
	rounds := fs.Int("rounds", 5, "rounds; each measures both tools back to back")
	threads := fs.Int("wrk-threads", 2, "wrk threads")
	hours := fs.Int("hours", 24, "length of the simulated live run (0: skip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found (Debian package wrk)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, self, "serve")
	out, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("server did not start: %w", err)
	}
	url := "http://" + strings.TrimSpace(addr) + "/"
	tmp, err := os.MkdirTemp("", "loadtest-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The machine may be shared: each round measures both tools back to back (in
	// alternating order) and yields one ratio; the median ratio is the result.
	var wrkRates, ltRates, uiRates, ratios, uiRatios, rss, cpuPlain, cpuUI []float64
	for i := range *rounds {
		var w, l, u, r, cl, cu float64
		measure := []func() error{
			func() (err error) { w, err = wrk(ctx, url, *threads, *conc, *dur); return err },
			func() (err error) {
				l, cl, err = loadtestRate(ctx, *loadtest, url, *conc, *dur, filepath.Join(tmp, fmt.Sprintf("r%d.json", i)))
				return err
			},
			func() (err error) { u, r, cu, err = loadtestUIRate(ctx, *loadtest, url, *conc, *dur); return err },
		}
		// rotate which goes first, so no tool always meets a cold (or a hot) machine
		for k := range measure {
			if err := measure[(i+k)%len(measure)](); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "round %d: wrk %.0f req/s, loadtest %.0f req/s, loadtest --ui %.0f req/s; loadtest/wrk %.2f, ui/plain %.2f; CPU per request %.1f µs, with --ui %.1f µs\n",
			i+1, w, l, u, l/w, u/l, cl, cu)
		wrkRates, ltRates, uiRates = append(wrkRates, w), append(ltRates, l), append(uiRates, u)
		ratios, uiRatios, rss = append(ratios, l/w), append(uiRatios, u/l), append(rss, r)
		cpuPlain, cpuUI = append(cpuPlain, cl), append(cpuUI, cu)
	}
	ratio, uiRatio := median(ratios), median(uiRatios)
	fmt.Fprintf(stdout, "concurrency %d, %s per run, %d rounds (medians)\nwrk           %.0f req/s\nloadtest      %.0f req/s\nloadtest --ui %.0f req/s (a subscriber reading /events; RSS at the end %.1f MiB)\n",
		*conc, *dur, *rounds, median(wrkRates), median(ltRates), median(uiRates), median(rss))
	// Per-request CPU is the cost the page adds to each request; its ratio is the rate a
	// CPU-bound generator would keep with the page (printed, not judged: the goal is on rates).
	fmt.Fprintf(stdout, "CPU per request: loadtest %.1f µs, loadtest --ui %.1f µs (medians; plain/ui %.2f)\n",
		median(cpuPlain), median(cpuUI), median(cpuPlain)/median(cpuUI))
	var missed []string
	verdict := func(name string, v, goal float64) {
		mark := "PASS"
		if v < goal {
			mark = "MISS"
			missed = append(missed, name)
		}
		fmt.Fprintf(stdout, "%s  %s %.2f (median of the per-round ratios; goal >= %.2f)\n", mark, name, v, goal)
	}
	verdict("loadtest/wrk", ratio, goal)
	verdict("loadtest --ui/loadtest", uiRatio, goalUI)
	if *hours > 0 {
		cmd := exec.CommandContext(ctx, self, "simulate", "--hours", strconv.Itoa(*hours))
		cmd.Stdout, cmd.Stderr = stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			missed = append(missed, "memory")
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("goal missed: %s", strings.Join(missed, ", "))
	}
	return nil
}

// loadtestUIRate runs loadtest --ui with the run on its command line, reads /events
// until the run's last event (a subscriber connected all along, as a page would be),
// and returns the rate that event reports, the process's RSS in MiB then, and its CPU
// time per request in µs.
// and returns the rate that event reports and the process's RSS in MiB then.
func loadtestUIRate(ctx context.Context, bin, url string, conc int, dur time.Duration) (rate, rssMiB, cpuUS float64, err error) {
	cmd := exec.CommandContext(ctx, bin, "--ui", "127.0.0.1:0", "--concurrency", strconv.Itoa(conc), "--duration", dur.String(),
		"--progress", "0", url)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, 0, 0, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stderr)
	var base string
	for base == "" && lines.Scan() {
		if m := uiAddr.FindStringSubmatch(lines.Text()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		return 0, 0, 0, errors.New("loadtest --ui printed no address")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	resp, err := http.Get(base + "/events")
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	events.Buffer(nil, 1<<20)
	for events.Scan() {
		data, ok := strings.CutPrefix(events.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			State    string  `json:"state"`
			Rate     float64 `json:"throughput_rps"`
			Snapshot struct {
				Totals struct {
					Requests int64 `json:"requests"`
				} `json:"totals"`
			} `json:"snapshot"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return 0, 0, 0, err
		}
		if ev.State == "finished" {
			rss := rssOf(cmd.Process.Pid)
			// The process idles after its run; its CPU time is the run's.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return ev.Rate, rss, cpuPerRequest(cmd.ProcessState, ev.Snapshot.Totals.Requests), nil
		}
	}
	return 0, 0, 0, fmt.Errorf("/events ended before the run did: %v", events.Err())
}

var uiAddr = regexp.MustCompile(`live page at (http://\S+)/ `)

// rssOf reads a process's resident set size in MiB from /proc (0 where there is none).
func rssOf(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(ctx context.Context, url string, threads, conc int, dur time.Duration) (float64, error) {
	secs := strconv.Itoa(int(dur.Seconds()))
	out, err := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conc), "-d"+secs+"s", url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// loadtestRate runs loadtest without the page and returns its rate and its CPU time
// per request in µs.
func loadtestRate(ctx context.Context, bin, url string, conc int, dur time.Duration, jsonPath string) (rate, cpuUS float64, err error) {
	cmd := exec.CommandContext(ctx, bin, "--concurrency", strconv.Itoa(conc), "--duration", dur.String(),
		"--progress", "0", "--json", jsonPath, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("loadtest: %w\n%s", err, out)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return 0, 0, err
	}
	var doc struct {
		Summary struct {
			Requests   int64   `json:"requests"`
			Throughput float64 `json:"throughput_rps"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, 0, err
	}
	return doc.Summary.Throughput, cpuPerRequest(cmd.ProcessState, doc.Summary.Requests), nil
}

// cpuPerRequest is an ended process's user and system CPU time per request, in µs.
// Unlike a rate it hardly moves with what else the machine runs, so it shows the
// page's own cost where rates are too noisy to.
func cpuPerRequest(ps *os.ProcessState, requests int64) float64 {
	if ps == nil || requests == 0 {
		return 0
	}
	return float64((ps.UserTime() + ps.SystemTime()).Microseconds()) / float64(requests)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// serve is the trivial target: a fixed small body and a path header, as a workload
// would answer.
func serve(ctx context.Context, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ln.Addr())
	body := []byte(`{"service":"bench","version":"v1"}`)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Meshdemo-Path", "bench/v1@bench-0")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
