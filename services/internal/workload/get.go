package workload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("header %q: want 'Name: value'", v)
	}
	*h = append(*h, [2]string{name, strings.TrimSpace(value)})
	return nil
}

// maxGetBody bounds what `get` prints of a body.
const maxGetBody = 64 << 10

// get is the `get [-H 'Name: value']... [-timeout 10s] URL` subcommand: one GET, made by the
// workload's own process. In a meshed pod the app container is the one whose traffic the
// sidecar captures (Envoy's own UID 1337 is excluded from capture), so a call made here
// leaves with the workload's mTLS identity, which the e2e suite needs for authorization
// tests; the images have no curl and no shell. It prints the status code on the first line,
// then the body. The error is nil whenever an HTTP answer arrived, whatever its code; it is
// not nil (exit status 1) when none did: bad usage, connection refused or reset, timeout.
func get(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name+" get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var headers headerFlags
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable; the name's spelling is kept)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long (connect, send, read the body)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s get [-H 'Name: value']... [-timeout 10s] URL\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("get: want exactly one URL, got %d arguments", fs.NArg())
	}
	if *timeout <= 0 {
		return fmt.Errorf("get: -timeout %s: must be positive", *timeout)
	}
	target := fs.Arg(0)
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("get: %q is not an http(s) URL", target)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	for _, h := range headers {
		if strings.EqualFold(h[0], "Host") {
			req.Host = h[1]
			continue
		}
		req.Header[h[0]] = append(req.Header[h[0]], h[1]) // exact spelling: canary_id stays canary_id
	}
	// One request, no proxy from the environment, no connection kept.
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("get %s: no answer within %s: %w", target, *timeout, err)
		}
		return fmt.Errorf("get %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGetBody))
	fmt.Fprintf(stdout, "%d\n%s", resp.StatusCode, body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("get %s: status %d, reading the body: %w", target, resp.StatusCode, err)
	}
	return nil
}
