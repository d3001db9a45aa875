// Command loadtest-bench measures loadtest's own overhead: on loopback, against a
// trivial Go server in a separate process, it runs wrk and loadtest in turns at the
// same concurrency and prints both request rates and their ratio. The goal is a
// ratio of at least 0.6; below it the command exits 1.
//
//	loadtest-bench --loadtest bin/loadtest [--concurrency 32] [--duration 3s] [--rounds 5]
//
// Run as "loadtest-bench serve" it is the trivial server (prints its address).
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

const goal = 0.6

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
	fs := flag.NewFlagSet("loadtest-bench", flag.ContinueOnError)
	loadtest := fs.String("loadtest", "bin/loadtest", "loadtest binary")
	conc := fs.Int("concurrency", 32, "connections, the same for wrk and loadtest")
	dur := fs.Duration("duration", 3*time.Second, "length of each measurement")
	rounds := fs.Int("rounds", 5, "rounds; each measures both tools back to back")
	threads := fs.Int("wrk-threads", 2, "wrk threads")
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
	var wrkRates, ltRates, ratios []float64
	for i := range *rounds {
		var w, l float64
		measureWrk := func() (err error) { w, err = wrk(ctx, url, *threads, *conc, *dur); return err }
		measureLT := func() (err error) {
			l, err = loadtestRate(ctx, *loadtest, url, *conc, *dur, filepath.Join(tmp, fmt.Sprintf("r%d.json", i)))
			return err
		}
		first, second := measureWrk, measureLT
		if i%2 == 1 {
			first, second = measureLT, measureWrk
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "round %d: wrk %.0f req/s, loadtest %.0f req/s, ratio %.2f\n", i+1, w, l, l/w)
		wrkRates, ltRates, ratios = append(wrkRates, w), append(ltRates, l), append(ratios, l/w)
	}
	ratio := median(ratios)
	fmt.Fprintf(stdout, "concurrency %d, %s per run, %d rounds (medians)\nwrk      %.0f req/s\nloadtest %.0f req/s\nratio    %.2f (median of the per-round ratios; goal >= %.1f)\n",
		*conc, *dur, *rounds, median(wrkRates), median(ltRates), ratio, goal)
	if ratio < goal {
		return fmt.Errorf("ratio %.2f below the goal %.1f", ratio, goal)
	}
	return nil
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

func loadtestRate(ctx context.Context, bin, url string, conc int, dur time.Duration, jsonPath string) (float64, error) {
	out, err := exec.CommandContext(ctx, bin, "--concurrency", strconv.Itoa(conc), "--duration", dur.String(),
		"--progress", "0", "--json", jsonPath, url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("loadtest: %w\n%s", err, out)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Summary struct {
			Throughput float64 `json:"throughput_rps"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, err
	}
	return doc.Summary.Throughput, nil
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
