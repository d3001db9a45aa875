// Command e2e-kind runs the whole kind end-to-end flow (`make e2e`): cluster, Istio, skaffold,
// baseline, the suite, teardown. -dry-run prints every command instead and renders every
// manifest the flow and the scenario tests would apply.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshdemo/meshdemo/e2e/kindpath"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-kind:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("e2e-kind", flag.ContinueOnError)
	dry := fs.Bool("dry-run", false, "print the commands and render the manifests; run nothing")
	keep := fs.Bool("keep-cluster", os.Getenv("KEEP_CLUSTER") == "1", "leave the kind cluster running (KEEP_CLUSTER=1)")
	run := fs.String("run", "", "passed to go test -run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := kindpath.Config{KeepCluster: *keep}
	if *run != "" {
		cfg.TestArgs = []string{"-run", *run}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return err
	}
	fmt.Printf("# meshdemo kind e2e, written against kind %s, kubectl %s, Docker %s, Istio %s (build/istio-version)\n",
		kindpath.KindVersion, kindpath.KubectlVersion, kindpath.DockerVersion, cfg.IstioTag)
	r := kindpath.Runner{Root: cfg.Root, DryRun: *dry, Out: os.Stdout, Stdout: os.Stdout, Stderr: os.Stderr}
	if *dry {
		plan, err := kindpath.Plan(ctx, cfg)
		if err != nil {
			return err
		}
		return r.Run(ctx, plan)
	}
	return r.Run(ctx, cfg.Flow())
}
