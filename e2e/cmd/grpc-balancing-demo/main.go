// Command grpc-balancing-demo prints which server1 instance answered N calls through the
// client over gRPC (GET /client/grpc) and over HTTP (GET /client/server1, one at a time and
// concurrently): the "before" picture of build/compose/grpc-balancing.yaml, run by
// `make compose-grpc-demo`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/meshdemo/meshdemo/e2e/internal/balancing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-balancing-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("grpc-balancing-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8090", "the client's HTTP address")
	n := fs.Int("n", 200, "calls per row")
	conc := fs.Int("concurrency", 8, "concurrency of the gRPC row; the HTTP rows use half, twice and eight times it")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for the client to answer 200 through the chain")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *conc < 1 {
		return errors.New("-n and -concurrency must be at least 1")
	}
	url := strings.TrimSuffix(*base, "/")
	hc := balancing.NewHTTPClient(*conc)
	if err := waitReady(ctx, hc, url+"/client/grpc", *wait); err != nil {
		return err
	}
	type row struct {
		label, path string
		conc        int
	}
	rows := []row{
		{fmt.Sprintf("gRPC  /client/grpc     concurrency %d", *conc), "/client/grpc", *conc},
		{"HTTP  /client/server1  one at a time", "/client/server1", 1},
	}
	// Rising concurrency makes the client dial new connections to server1, each dial
	// resolving the name again; a fixed concurrency would dial only once per burst.
	for _, c := range []int{*conc / 2, *conc * 2, *conc * 8} {
		if c > 1 {
			rows = append(rows, row{fmt.Sprintf("HTTP  /client/server1  concurrency %d", c), "/client/server1", c})
		}
	}
	fmt.Fprintf(stdout, "%-40s %5s  %s\n", "calls through the client", "calls", "server1 instance=answers")
	for _, r := range rows {
		c, err := balancing.Tally(ctx, balancing.NewHTTPClient(r.conc), url+r.path, "server1", *n, r.conc)
		if err != nil {
			return fmt.Errorf("%s: %w", r.label, err)
		}
		fmt.Fprintf(stdout, "%-40s %5d  %s\n", r.label, *n, c)
	}
	return nil
}

// waitReady polls url until one call answers 200 through the whole chain.
func waitReady(ctx context.Context, hc *http.Client, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		_, err := balancing.Tally(ctx, hc, url, "server1", 1, 1)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered 200 within %s: %w", url, d, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
