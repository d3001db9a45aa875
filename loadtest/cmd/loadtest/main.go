// Command loadtest drives HTTP load at the mesh and checks what the mesh did with it:
// which version served each hop (from the X-Meshdemo-Path response header), which
// statuses came back, how slow it was. See the README section "Load testing".
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(exitCode(err))
	}
}
