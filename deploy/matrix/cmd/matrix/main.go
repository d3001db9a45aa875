// Command matrix prints one list of the declaration, one name per line, for the Makefile and
// shell scripts: matrix workloads|scenarios|presets|flavours|profiles.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: matrix workloads|scenarios|presets|flavours|profiles")
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
	default:
		return fmt.Errorf("unknown list %q: want workloads, scenarios, presets, flavours or profiles", args[0])
	}
	for _, s := range out {
		if _, err := fmt.Fprintln(stdout, s); err != nil {
			return err
		}
	}
	return nil
}
