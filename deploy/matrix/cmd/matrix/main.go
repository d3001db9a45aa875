// Command matrix prints one list of the declaration, one name per line, for the Makefile and
// shell scripts: matrix workloads|scenarios|presets|flavours|profiles|images. `matrix refs FILE`
// prints, from a release's images.json (matrix.ParseRelease checks it), one line per image: its
// name and its pull reference by digest. `matrix subjects FILE` prints the same images as
// sha256sum lines ("<hex>  <repository>"), the subject-checksums file of GitHub's build
// provenance action (.github/workflows/release.yml, through make release-subjects).
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 2 && args[0] == "refs" {
		return printRelease(args[1], stdout, func(im matrix.ReleasedImage) string { return im.Name + " " + im.Ref() })
	}
	if len(args) == 2 && args[0] == "subjects" {
		return printRelease(args[1], stdout, func(im matrix.ReleasedImage) string {
			return strings.TrimPrefix(im.Digest, "sha256:") + "  " + im.Repository
		})
	}
	if len(args) != 1 {
		return fmt.Errorf("usage: matrix workloads|scenarios|presets|flavours|profiles|images, or matrix refs|subjects IMAGES_JSON")
	}
	var out []string
	switch args[0] {
	case "workloads":
		out = matrix.WorkloadNames()
	case "scenarios":
		out = matrix.ScenarioNames()
	case "presets":
		out = matrix.PresetNames()
	case "flavours":
		for _, f := range matrix.Flavours() {
			out = append(out, f.String())
		}
	case "profiles":
		out = matrix.Profiles()
	case "images":
		for _, im := range matrix.Images() {
			out = append(out, im.Name)
		}
	default:
		return fmt.Errorf("unknown list %q: want workloads, scenarios, presets, flavours, profiles or images", args[0])
	}
	for _, s := range out {
		if _, err := fmt.Fprintln(stdout, s); err != nil {
			return err
		}
	}
	return nil
}

// printRelease prints one line per image of a release, as line formats it.
func printRelease(file string, stdout io.Writer, line func(matrix.ReleasedImage) string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	r, err := matrix.ParseRelease(data)
	if err != nil {
		return err
	}
	for _, im := range r.Images {
		if _, err := fmt.Fprintln(stdout, line(im)); err != nil {
			return err
		}
	}
	return nil
}
