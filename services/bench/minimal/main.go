// Command minimal is the yardstick of `make bench`: the same three-hop chain as
// client → server1 → server2, written in plain net/http with a tuned transport and
// nothing else (no logging, metrics, tracing, propagation or faults). The real chain is
// measured against it, so both run as separate processes on loopback.
//
//	minimal -role server2 -addr 127.0.0.1:18082
//	minimal -role server1 -addr 127.0.0.1:18081 -upstream http://127.0.0.1:18082
//	minimal -role client  -addr 127.0.0.1:18080 -upstream http://127.0.0.1:18081
//
// With -grpc-addr/-grpc-upstream the hops talk plain grpc-go instead (see grpc.go) and
// the client answers GET /client/grpc.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// roles maps a role to the path it serves and the upstream path it calls ("" = the end).
var roles = map[string][2]string{
	"client":  {"/client/server1", "/server1/server2"},
	"server1": {"/server1/server2", "/server2/end"},
	"server2": {"/server2/end", ""},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	role := fs.String("role", "", "client, server1 or server2")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	upstream := fs.String("upstream", "", "base URL of the next hop (client, server1)")
	instance := fs.String("instance", "minimal", "instance reported by server2")
	grpcAddr := fs.String("grpc-addr", "", "gRPC mode: serve Chain here (server1, server2)")
	grpcUpstream := fs.String("grpc-upstream", "", "gRPC mode: host:port of the next hop's Chain (client, server1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	paths, ok := roles[*role]
	if !ok {
		return fmt.Errorf("unknown -role %q", *role)
	}
	grpcMode := *grpcAddr != "" || *grpcUpstream != ""
	if paths[1] != "" && *upstream == "" && !grpcMode {
		return fmt.Errorf("-role %s needs -upstream", *role)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
	switch {
	case grpcMode:
		if paths[1] != "" && *grpcUpstream == "" {
			return fmt.Errorf("-role %s needs -grpc-upstream", *role)
		}
		gs, err := setupGRPC(mux, *role, *grpcAddr, *grpcUpstream, *instance)
		if err != nil {
			return err
		}
		if gs != nil {
			defer gs.Stop()
		}
	case paths[1] == "":
		mux.Handle("GET "+paths[0], endHandler(*instance))
	default:
		mux.Handle("GET "+paths[0], relayHandler(*upstream+paths[1]))
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// endHandler answers with the same JSON body as server2.
func endHandler(instance string) http.Handler {
	body := []byte(`{"firstName":"Mick","lastName":"Chung","service":"server2","version":"v1","instance":` +
		strconv.Quote(instance) + `}`)
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", length)
		_, _ = w.Write(body)
	})
}

// relayHandler calls target with the inbound context and relays status and body.
func relayHandler(target string) http.Handler {
	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	pool := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		buf := pool.Get().(*bytes.Buffer)
		buf.Reset()
		defer pool.Put(buf)
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(buf.Bytes())
	})
}
