// Command e2e-kind runs the whole kind end-to-end flow (`make e2e`): cluster, Istio, images
// (skaffold build, kind load), the baseline, the suite, teardown, in one flavour (-flavour
// sidecar|gateway-api|ambient, default $E2E_FLAVOUR or sidecar). -dry-run prints every
// command instead, with the scenario switches and meshed calls the suite makes. The hand
// steps of build/make/k8s.mk run the same commands: -istio-install (`make istio-install
// FLAVOUR=f`), and -deploy NAME (`make deploy SCENARIO=NAME FLAVOUR=f`),
// which checks the cluster's Istio is of the flavour, builds and loads the images and
// switches the cluster to one scenario, pruning what the previous scenario left.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"github.com/meshdemo/meshdemo/e2e/kindflow"
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
	dry := fs.Bool("dry-run", false, "print the commands; run nothing")
	keep := fs.Bool("keep-cluster", os.Getenv("KEEP_CLUSTER") == "1", "leave the kind cluster running (KEEP_CLUSTER=1)")
	run := fs.String("run", "", "passed to go test -run")
	deploy := fs.String("deploy", "", "only build and load the images and switch the cluster to this scenario (deploy/scenarios/<name>)")
	istio := fs.Bool("istio-install", false, "only install Istio on the cluster and wait for istiod and the gateway")
	cluster := fs.String("cluster", "meshdemo", "kind cluster name (context kind-<name>)")
	flavour := fs.String("flavour", os.Getenv("E2E_FLAVOUR"), "sidecar, gateway-api or ambient ($E2E_FLAVOUR; empty is sidecar)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := kindflow.Config{KeepCluster: *keep, Cluster: *cluster, Flavour: matrix.Flavour(*flavour)}
	if *run != "" {
		cfg.TestArgs = []string{"-run", *run}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return err
	}
	fmt.Printf("# meshdemo kind e2e, flavour %s, written against kind %s, kubectl %s, Docker %s, Istio %s (build/istio-version)\n",
		cfg.Flavour, kindflow.KindVersion, kindflow.KubectlVersion, kindflow.DockerVersion, cfg.IstioTag)
	r := kindflow.Runner{Root: cfg.Root, DryRun: *dry, Out: os.Stdout, Stdout: os.Stdout, Stderr: os.Stderr}
	if *istio {
		steps, err := cfg.IstioInstall(ctx)
		if err != nil {
			return err
		}
		return r.Run(ctx, steps)
	}
	if *deploy != "" {
		steps, err := cfg.Deploy(ctx, *deploy)
		if err != nil {
			return err
		}
		// The guard first: a cluster of another flavour is refused before anything is built.
		steps = append(append([]kindflow.Step{cfg.FlavourGuard("deploy "+*deploy, false)}, cfg.Images()...), steps...)
		return r.Run(ctx, steps)
	}
	if *dry {
		plan, err := kindflow.Plan(ctx, cfg)
		if err != nil {
			return err
		}
		return r.Run(ctx, plan)
	}
	flow, err := cfg.Flow(ctx)
	if err != nil {
		return err
	}
	return r.Run(ctx, flow)
}
