// Command render prints a rendered meshdemo scenario, exactly as the verify tests and skaffold
// build it (kustomize API, in process; no kustomize binary needed).
//
//	render [-root DIR] [-flavour F] SCENARIO        # SCENARIO: default, canary or a scenario name
//	render [-root DIR] [-flavour F] -alone SCENARIO # the component without the canary
//	render [-root DIR] -write                       # regenerate deploy/scenarios/*/kustomization.yaml and skaffold.yaml
//	render [-root DIR] -release IMAGES_JSON -out DIR # write the release bundles, DIR/meshdemo-<profile>.yaml
//
// F is sidecar (the default), gateway-api or ambient.
//
// -release is `make release`'s bundle step (build/release/release.sh): from the release's
// images.json (matrix.ParseRelease checks it) it generates the release component in memory
// (matrix.ReleaseComponentFile at matrix.ReleaseComponent), renders every profile of
// matrix.Profiles as matrix.ReleaseIn, checks each bundle (strict decode and every rule of
// verify/manifests, for any cluster) and writes it as matrix.BundleName. Nothing is written
// unless all of them pass.
package main

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/meshdemo/meshdemo/verify/manifests"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	root := fs.String("root", "..", "repository root")
	alone := fs.Bool("alone", false, "render the scenario component without the canary")
	write := fs.Bool("write", false, "regenerate deploy/scenarios")
	flavourName := fs.String("flavour", "", "sidecar (default), gateway-api or ambient")
	releaseFile := fs.String("release", "", "a release's "+matrix.ReleaseFile+": write its bundles into -out")
	outDir := fs.String("out", "", "with -release: the folder the bundles are written to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *releaseFile != "" || *outDir != "" {
		switch {
		case *releaseFile == "":
			return errors.New("-out needs -release IMAGES_JSON")
		case *outDir == "":
			return errors.New("-release needs -out DIR, the folder for the bundles")
		case *write || *alone || *flavourName != "" || fs.NArg() > 0:
			return errors.New("-release renders every profile: it takes no -write, -alone, -flavour or scenario")
		}
		return bundles(*root, *releaseFile, *outDir, stdout)
	}
	flavour, err := matrix.ParseFlavour(*flavourName)
	if err != nil {
		return err
	}
	names := append(slices.Clone(matrix.PresetNames()), matrix.ScenarioNames()...)
	if *write {
		for _, f := range matrix.Flavours() {
			for _, n := range names {
				dir := filepath.Join(*root, matrix.ScenarioDir(f.Profile(n)))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(matrix.ScenarioFile(f, n)), 0o644); err != nil {
					return err
				}
			}
		}
		return os.WriteFile(filepath.Join(*root, "skaffold.yaml"), []byte(manifests.SkaffoldFile()), 0o644)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("want one scenario, one of %v", names)
	}
	name := fs.Arg(0)
	if !slices.Contains(names, name) || (*alone && !slices.Contains(matrix.ScenarioNames(), name)) {
		return fmt.Errorf("unknown scenario %q, want one of %v", name, names)
	}
	tree, err := manifests.LoadTree(*root)
	if err != nil {
		return err
	}
	var out []byte
	if *alone {
		out, err = tree.Render(matrix.AloneIn(flavour, name))
	} else {
		out, err = tree.Build(matrix.ScenarioDir(flavour.Profile(name)))
	}
	if err != nil {
		return err
	}
	if _, err := manifests.Decode(out); err != nil {
		return errors.Join(errors.New("rendered, but does not decode strictly"), err)
	}
	_, err = stdout.Write(out)
	return err
}

// bundles renders, checks and writes the bundle of every profile for the release in file.
func bundles(root, file, outDir string, stdout io.Writer) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	r, err := matrix.ParseRelease(data)
	if err != nil {
		return fmt.Errorf("-release %s: %w", file, err)
	}
	tree, err := manifests.LoadTree(root)
	if err != nil {
		return err
	}
	if err := tree.UseRelease(r); err != nil {
		return err
	}
	out := map[string][]byte{}
	for _, p := range matrix.Profiles() {
		b, err := tree.Bundle(r, p)
		if err != nil {
			return err
		}
		out[p] = b
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for _, p := range matrix.Profiles() {
		name := filepath.Join(outDir, matrix.BundleName(p))
		if err := os.WriteFile(name, out[p], 0o644); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(stdout, name); err != nil {
			return err
		}
	}
	return nil
}
