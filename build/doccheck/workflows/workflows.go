// Package workflows holds the repository's policy for its GitHub workflows and Dependabot
// configuration, the part actionlint (syntax, expressions, shellcheck of run: blocks) does not
// know: what a supply chain the project publishes from must look like.
//
//   - every action is pinned by a full commit SHA with its version in a comment (a tag can be
//     moved; the comment is what Dependabot updates along with the SHA);
//   - the top-level permissions grant nothing that writes, no permission block says write-all,
//     and id-token: write and packages: write appear only in release.yml's release job;
//   - no ${{ }} expression inside a run: script (values come in through env:, so a tag or branch
//     name cannot inject shell);
//   - ci.yml runs `bash .ci/run`, release.yml runs `make release`, and every make target a
//     workflow names has a rule in the Makefile (the workflows stay thin: logic lives in make);
//   - Dependabot covers every go.mod of the repository, and the actions.
package workflows

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/meshdemo/meshdemo/build/doccheck"
	"go.yaml.in/yaml/v3"
)

// The one workflow and job allowed to mint OIDC tokens and write packages.
const (
	releaseWorkflow = "release.yml"
	releaseJob      = "release"
	ciWorkflow      = "ci.yml"
)

// privileged are the permissions only the release job may write.
var privileged = []string{"id-token", "packages"}

// Stats says how much a Check looked at, so a test can tell "nothing wrong" from "nothing found".
type Stats struct {
	Workflows, Jobs, Uses, Runs, MakeTargets, GoModules int
}

type workflow struct {
	Permissions yaml.Node      `yaml:"permissions"`
	Jobs        map[string]job `yaml:"jobs"`
}

type job struct {
	Permissions yaml.Node `yaml:"permissions"`
	Uses        yaml.Node `yaml:"uses"` // a reusable workflow
	Steps       []step    `yaml:"steps"`
}

type step struct {
	Uses yaml.Node `yaml:"uses"`
	Run  yaml.Node `yaml:"run"`
}

var (
	pinned     = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@]+)?@[0-9a-f]{40}$`)
	versionTag = regexp.MustCompile(`^#\s*v[0-9]+(\.[0-9]+)*\b`)
)

// Check reads root/.github/workflows/*.yml and root/.github/dependabot.yml and returns what
// breaks the policy; targets are the Makefile's (doccheck.Targets).
func Check(root string, targets map[string]bool) ([]doccheck.Problem, Stats, error) {
	var probs []doccheck.Problem
	var st Stats
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.y*ml"))
	if err != nil {
		return nil, st, err
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		p, err := checkWorkflow(root, name, targets, &st)
		if err != nil {
			return nil, st, err
		}
		probs = append(probs, p...)
	}
	for _, want := range []string{ciWorkflow, releaseWorkflow} {
		if !seen[want] {
			probs = append(probs, doccheck.Problem{File: ".github/workflows/" + want, Msg: "missing"})
		}
	}
	p, err := checkDependabot(root, &st)
	if err != nil {
		return nil, st, err
	}
	probs = append(probs, p...)
	slices.SortFunc(probs, func(a, b doccheck.Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.Msg, b.Msg)
	})
	return probs, st, nil
}

func checkWorkflow(root, name string, targets map[string]bool, st *Stats) ([]doccheck.Problem, error) {
	file := ".github/workflows/" + name
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return nil, err
	}
	var w workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		return []doccheck.Problem{{File: file, Msg: fmt.Sprintf("does not parse: %v", err)}}, nil
	}
	st.Workflows++
	var probs []doccheck.Problem
	add := func(line int, format string, args ...any) {
		probs = append(probs, doccheck.Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}

	switch perms := permissions(w.Permissions); {
	case w.Permissions.Kind == 0:
		add(1, "no top-level permissions: declare `permissions: {}` so a job gets only what it asks for")
	case perms == nil:
		add(w.Permissions.Line, "top-level permissions %q: want `{}` or a read-only map", w.Permissions.Value)
	default:
		for _, p := range perms {
			if p.value == "write" {
				add(p.line, "top-level permission %s: write: grant it in the job that needs it", p.name)
			}
		}
	}

	var runsCI, runsRelease bool
	for _, jobName := range sortedKeys(w.Jobs) {
		j := w.Jobs[jobName]
		st.Jobs++
		if j.Permissions.Kind != 0 {
			perms := permissions(j.Permissions)
			if perms == nil {
				add(j.Permissions.Line, "job %s: permissions %q: want a map naming each permission", jobName, j.Permissions.Value)
			}
			for _, p := range perms {
				if p.value == "write" && slices.Contains(privileged, p.name) && (name != releaseWorkflow || jobName != releaseJob) {
					add(p.line, "job %s: %s: write is allowed only in %s's %s job", jobName, p.name, releaseWorkflow, releaseJob)
				}
			}
		}
		uses := []yaml.Node{j.Uses}
		for _, s := range j.Steps {
			uses = append(uses, s.Uses)
		}
		for _, u := range uses {
			if u.Kind == 0 {
				continue
			}
			st.Uses++
			switch {
			case strings.HasPrefix(u.Value, "./"):
			case !pinned.MatchString(u.Value):
				add(u.Line, "uses %q: pin it by full commit SHA (owner/repo@<40 hex>)", u.Value)
			case !versionTag.MatchString(u.LineComment):
				add(u.Line, "uses %q: say which release the SHA is in a comment (# vX.Y.Z)", u.Value)
			}
		}
		for _, s := range j.Steps {
			if s.Run.Kind == 0 {
				continue
			}
			st.Runs++
			script := s.Run.Value
			if strings.Contains(script, "${{") {
				add(s.Run.Line, "job %s: ${{ }} inside run: pass the value through env: and quote the variable", jobName)
				continue
			}
			goals, err := doccheck.MakeTargets(script)
			if err != nil {
				add(s.Run.Line, "job %s: run: does not parse as bash: %v", jobName, err)
				continue
			}
			for _, g := range goals {
				st.MakeTargets++
				if !targets[g] {
					add(s.Run.Line, "job %s: `make %s`: no such target in the Makefile", jobName, g)
				}
				runsRelease = runsRelease || g == "release"
			}
			runsCI = runsCI || runsCIScript(script)
		}
	}
	if name == ciWorkflow && !runsCI {
		add(1, "no step runs `bash .ci/run` (make test, what a contributor runs)")
	}
	if name == releaseWorkflow && !runsRelease {
		add(1, "no step runs `make release`")
	}
	return probs, nil
}

// runsCIScript reports whether a run: script has the command `bash .ci/run` on a line of its own.
func runsCIScript(script string) bool {
	for l := range strings.Lines(script) {
		if strings.Join(strings.Fields(l), " ") == "bash .ci/run" {
			return true
		}
	}
	return false
}

type permission struct {
	name, value string
	line        int
}

// permissions returns a permissions block as a list (empty for `{}`), or nil for a scalar such
// as write-all or read-all.
func permissions(n yaml.Node) []permission {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	out := []permission{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, permission{n.Content[i].Value, n.Content[i+1].Value, n.Content[i].Line})
	}
	return out
}

type dependabot struct {
	Updates []struct {
		Ecosystem   string   `yaml:"package-ecosystem"`
		Directory   string   `yaml:"directory"`
		Directories []string `yaml:"directories"`
	} `yaml:"updates"`
}

// checkDependabot wants one gomod update covering exactly the repository's go.mod directories
// (testdata excepted) and a github-actions update for "/".
func checkDependabot(root string, st *Stats) ([]doccheck.Problem, error) {
	const file = ".github/dependabot.yml"
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return []doccheck.Problem{{File: file, Msg: "missing: Dependabot must update the Go modules and the actions"}}, nil
	}
	var d dependabot
	if err := yaml.Unmarshal(data, &d); err != nil {
		return []doccheck.Problem{{File: file, Msg: fmt.Sprintf("does not parse: %v", err)}}, nil
	}
	mods, err := goModDirs(root)
	if err != nil {
		return nil, err
	}
	st.GoModules = len(mods)
	listed := map[string]bool{}
	actions := false
	for _, u := range d.Updates {
		dirs := u.Directories
		if u.Directory != "" {
			dirs = append(dirs, u.Directory)
		}
		switch u.Ecosystem {
		case "gomod":
			for _, dir := range dirs {
				listed[path.Clean(dir)] = true
			}
		case "github-actions":
			actions = actions || slices.Contains(dirs, "/")
		}
	}
	var probs []doccheck.Problem
	for _, m := range mods {
		if !listed[m] {
			probs = append(probs, doccheck.Problem{File: file, Msg: fmt.Sprintf("gomod: %s (it has a go.mod) is not listed", m)})
		}
	}
	for _, l := range sortedKeys(listed) {
		if !slices.Contains(mods, l) {
			probs = append(probs, doccheck.Problem{File: file, Msg: fmt.Sprintf("gomod: %s has no go.mod", l)})
		}
	}
	if !actions {
		probs = append(probs, doccheck.Problem{File: file, Msg: `no github-actions update for "/"`})
	}
	return probs, nil
}

// goModDirs lists the directories holding a go.mod, as Dependabot names them ("/services"),
// skipping testdata, hidden directories and the build outputs.
func goModDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root {
			switch n := d.Name(); {
			case n == "testdata" || strings.HasPrefix(n, ".") || n == "bin" || n == "dist" || n == "node_modules":
				return filepath.SkipDir
			}
		}
		if !d.IsDir() && d.Name() == "go.mod" {
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			dirs = append(dirs, path.Clean("/"+filepath.ToSlash(rel)))
		}
		return nil
	})
	slices.Sort(dirs)
	return dirs, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
