// Command release builds every image of deploy/matrix (Images) for linux/amd64 and linux/arm64,
// reproducibly, pushes each image index by digest and tags it with the version, and writes the
// release's images.json and one SPDX SBOM per image. build/release/release.sh runs it:
//
//	go run ./cmd/release -root ROOT -registry HOST[:PORT]/PATH -version vX.Y.Z -out DIR
//
// Credentials for the registry come from the Docker config (docker login); a loopback registry
// (127.0.0.1:PORT, localhost:PORT) is spoken to over plain HTTP. GO names the go command that
// compiles the binaries (release.sh passes make's GO), go by default.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// usageError is bad command-line input: exit status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }
