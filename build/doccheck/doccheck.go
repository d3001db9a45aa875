// Package doccheck keeps the repository's Markdown honest: every relative link and
// #anchor resolves, and every `make` target a page names has a rule in the Makefile as make
// itself reads it (build/make/*.mk included). A page that drifts from the tree fails
// `make test-docs` instead of misleading a newcomer.
package doccheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"mvdan.cc/sh/v3/syntax"
)

// Problem is one thing a page gets wrong.
type Problem struct {
	File string // relative to the checked root, slash-separated
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Stats says how much a Check looked at, so a test can tell "nothing wrong" from "nothing
// found".
type Stats struct {
	Pages, Links, Anchors, MakeTargets int
}

// Pages lists the Markdown the check covers, relative to root: README.md, every *.md under
// docs/, and istio/sidecar/components/README.md when there is one.
func Pages(root string) ([]string, error) {
	pages := []string{"README.md"}
	if _, err := os.Stat(filepath.Join(root, "istio", "sidecar", "components", "README.md")); err == nil {
		pages = append(pages, "istio/sidecar/components/README.md")
	}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			pages = append(pages, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(pages)
	return pages, err
}

// probeGoal is a goal no Makefile defines: asking make for it (in question mode) runs no
// recipe at all, while -p still prints the whole rule database.
const probeGoal = "__doccheck_probe__"

// Targets returns the targets that have a rule (a recipe or prerequisites) in the Makefile in
// dir, from make's own database (`make -pRrq`), so included files, variables in target names
// and conditionals count exactly as make counts them. A name that is only declared .PHONY has
// no rule: `make` of it does nothing and succeeds, which is what this check exists to catch.
func Targets(ctx context.Context, dir string) (map[string]bool, error) {
	found := false
	for _, name := range []string{"GNUmakefile", "makefile", "Makefile"} { // make's search order
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("no Makefile in %s", dir)
	}
	cmd := exec.CommandContext(ctx, "make", "-pRrq", "--no-print-directory", probeGoal)
	cmd.Dir = dir
	// A check run from inside make (make test-docs) must not inherit its flags: -n or -j
	// there would change what this make does.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "MAKEFLAGS" || k == "MFLAGS" || k == "MAKELEVEL" || k == "GNUMAKEFLAGS"
	})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	// The probe goal has no rule, so make exits 2 after printing the database; anything
	// else on stderr (a syntax error in a .mk file, make missing) is a real failure.
	if msg := strings.TrimSpace(stderr.String()); msg != "" && !strings.Contains(msg, "No rule to make target '"+probeGoal+"'") ||
		strings.Count(msg, "\n") > 0 {
		return nil, fmt.Errorf("make -p in %s: %v: %s", dir, runErr, msg)
	}
	return parseDatabase(stdout.Bytes())
}

// parseDatabase reads the "# Files" section of `make -p`: blocks separated by blank lines, each
// a "target: prerequisites" line, comments, and the recipe (tab-indented).
func parseDatabase(db []byte) (map[string]bool, error) {
	_, files, ok := bytes.Cut(db, []byte("\n# Files\n"))
	if !ok {
		return nil, errors.New("make -p printed no '# Files' section")
	}
	files, _, _ = bytes.Cut(files, []byte("\n# files hash-table stats"))
	targets := map[string]bool{}
	for block := range strings.SplitSeq(string(files), "\n\n") {
		lines := strings.Split(strings.Trim(block, "\n"), "\n")
		if len(lines) == 0 || lines[0] == "# Not a target:" {
			continue
		}
		name, rule := "", false
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "\t"):
				rule = true // a recipe line
			case l == "" || strings.HasPrefix(l, "#"):
			default:
				n, rest, ok := strings.Cut(l, ":")
				rest = strings.TrimPrefix(rest, ":") // double-colon rules
				if !ok || strings.Contains(rest, "=") {
					continue // a target-specific variable: "loadtest: CGO_ENABLED := 0"
				}
				name = n
				if strings.TrimSpace(rest) != "" {
					rule = true // prerequisites
				}
			}
		}
		if name != "" && rule && !strings.HasPrefix(name, ".") && name != probeGoal {
			targets[name] = true
		}
	}
	return targets, nil
}

// Check parses every page under root (slash paths from Pages) and reports broken relative
// links and anchors, `make` targets missing from targets, and shell blocks that do not parse.
func Check(root string, pages []string, targets map[string]bool) ([]Problem, Stats, error) {
	c := &checker{root: root, parsed: map[string]*page{}}
	var probs []Problem
	st := Stats{Pages: len(pages)}
	for _, name := range pages {
		p, err := c.page(name)
		if err != nil {
			return nil, st, err
		}
		probs = append(probs, p.problems...)
		for _, l := range p.links {
			if msg, counted := c.resolve(name, l.dest); msg != "" {
				probs = append(probs, Problem{name, l.line, msg})
			} else if counted {
				st.Links++
				if strings.Contains(l.dest, "#") {
					st.Anchors++
				}
			}
		}
		for _, m := range p.makes {
			st.MakeTargets++
			if !targets[m.target] {
				probs = append(probs, Problem{name, m.line, fmt.Sprintf("`make %s`: no such target in the Makefile", m.target)})
			}
		}
	}
	return probs, st, nil
}

type checker struct {
	root   string
	parsed map[string]*page // by slash path relative to root
}

type link struct {
	dest string
	line int
}

type makeRef struct {
	target string
	line   int
}

type page struct {
	anchors  map[string]bool
	links    []link
	makes    []makeRef
	problems []Problem
}

// lineRef matches a GitHub line anchor on a non-Markdown file: #L10 or #L10-L20.
var lineRef = regexp.MustCompile(`^L[0-9]+(-L[0-9]+)?$`)

// resolve checks one link destination from page from; counted is false for links this check
// does not own (absolute URLs).
func (c *checker) resolve(from, dest string) (msg string, counted bool) {
	u, err := url.Parse(dest)
	if err != nil {
		return fmt.Sprintf("link %q does not parse: %v", dest, err), true
	}
	if u.Scheme != "" || u.Host != "" {
		return "", false
	}
	target := from
	if u.Path != "" {
		if path.IsAbs(u.Path) {
			return fmt.Sprintf("link %q is absolute: on GitHub it leaves the repository; make it relative", dest), true
		}
		target = path.Join(path.Dir(from), u.Path)
		if target == ".." || strings.HasPrefix(target, "../") {
			return fmt.Sprintf("link %q points outside the repository", dest), true
		}
		if _, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(target))); err != nil {
			return fmt.Sprintf("link %q: %s does not exist", dest, target), true
		}
	}
	if u.Fragment == "" {
		return "", true
	}
	if !strings.HasSuffix(target, ".md") {
		if lineRef.MatchString(u.Fragment) {
			return "", true
		}
		return fmt.Sprintf("link %q: anchor on a file that is not Markdown", dest), true
	}
	p, err := c.page(target)
	if err != nil {
		return fmt.Sprintf("link %q: %v", dest, err), true
	}
	if !p.anchors[u.Fragment] {
		return fmt.Sprintf("link %q: %s has no heading with anchor #%s", dest, target, u.Fragment), true
	}
	return "", true
}

var md = goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithParserOptions(parser.WithAutoHeadingID()))

func (c *checker) page(name string) (*page, error) {
	if p, ok := c.parsed[name]; ok {
		return p, nil
	}
	src, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	p := parsePage(name, src)
	c.parsed[name] = p
	return p, nil
}

func parsePage(name string, src []byte) *page {
	p := &page{anchors: map[string]bool{}}
	ctx := parser.NewContext(parser.WithIDs(newGitHubIDs()))
	doc := md.Parser().Parse(text.NewReader(src), parser.WithContext(ctx))
	lineOf := func(n ast.Node) int {
		for ; n != nil; n = n.Parent() {
			if n.Type() == ast.TypeBlock && n.Lines().Len() > 0 {
				first := n.Lines().At(0)
				return bytes.Count(src[:first.Start], []byte("\n")) + 1
			}
		}
		return 0
	}
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Heading:
			if id, ok := n.AttributeString("id"); ok {
				p.anchors[string(id.([]byte))] = true
			}
		case *ast.Link:
			p.links = append(p.links, link{string(n.Destination), lineOf(n)})
		case *ast.Image:
			p.links = append(p.links, link{string(n.Destination), lineOf(n)})
		case *ast.CodeSpan:
			// Prose spans are often not shell (`{"id":1}`): only spans that parse count.
			if targets, err := MakeTargets(inlineText(n, src)); err == nil {
				for _, t := range targets {
					p.makes = append(p.makes, makeRef{t, lineOf(n)})
				}
			}
			return ast.WalkSkipChildren, nil
		case *ast.FencedCodeBlock, *ast.CodeBlock:
			var b strings.Builder
			for i := range n.Lines().Len() {
				seg := n.Lines().At(i)
				b.Write(seg.Value(src))
			}
			lang := ""
			if fb, ok := n.(*ast.FencedCodeBlock); ok {
				lang = string(fb.Language(src))
			}
			targets, err := MakeTargets(b.String())
			switch {
			case err == nil:
				for _, t := range targets {
					p.makes = append(p.makes, makeRef{t, lineOf(n)})
				}
			case lang == "sh" || lang == "bash" || lang == "shell":
				// A block that says it is shell must be shell: otherwise its make
				// commands would go unchecked, silently.
				p.problems = append(p.problems, Problem{name, lineOf(n), fmt.Sprintf("%s block does not parse as shell: %v", lang, err)})
			}
			return ast.WalkSkipChildren, nil
		}
		return ast.WalkContinue, nil
	})
	return p
}

func inlineText(n ast.Node, src []byte) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Segment.Value(src))
		case *ast.String:
			b.Write(c.Value)
		}
	}
	return b.String()
}

// makeFlagsWithArg are make's short options that take the next word as their argument.
var makeFlagsWithArg = map[string]bool{"-C": true, "-f": true, "-I": true, "-o": true, "-W": true}

// MakeTargets parses script as bash and returns the goals of every `make` command in it:
// the literal arguments that are neither options nor VAR=value assignments. Commands after
// `&&`, in pipelines and in subshells count too; comments do not.
func MakeTargets(script string) ([]string, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(script), "")
	if err != nil {
		return nil, err
	}
	var out []string
	syntax.Walk(f, func(n syntax.Node) bool {
		ce, ok := n.(*syntax.CallExpr)
		if !ok || len(ce.Args) == 0 || ce.Args[0].Lit() != "make" {
			return true
		}
		skipNext := false
		for _, w := range ce.Args[1:] {
			lit := w.Lit() // "" for anything quoted or expanded, such as FLAGS='-c 64'
			switch {
			case skipNext:
				skipNext = false
			case makeFlagsWithArg[lit]:
				skipNext = true
			case lit == "" || strings.HasPrefix(lit, "-") || strings.Contains(lit, "="):
			default:
				out = append(out, lit)
			}
		}
		return true
	})
	return out, nil
}

// gitHubIDs gives headings the anchors GitHub gives them, which is what a link in the
// repository must match: lower case, letters, digits, '_' and '-' kept, each space a '-',
// everything else dropped, repeats suffixed -1, -2, ... goldmark's default differs in two
// ways that matter here: it turns '_' into '-' and drops non-ASCII letters.
type gitHubIDs struct{ seen map[string]bool }

func newGitHubIDs() *gitHubIDs { return &gitHubIDs{seen: map[string]bool{}} }

func (g *gitHubIDs) Generate(value []byte, _ ast.NodeKind) []byte {
	id := GitHubAnchor(string(value))
	base := id
	for i := 1; g.seen[id]; i++ {
		id = fmt.Sprintf("%s-%d", base, i)
	}
	g.seen[id] = true
	return []byte(id)
}

func (g *gitHubIDs) Put(value []byte) { g.seen[string(value)] = true }

// GitHubAnchor is the anchor GitHub derives from a heading's text (before de-duplication).
// It works on the heading's source line: Markdown punctuation in it (`, *, [, ]) is dropped
// like any other punctuation, so headings with inline code match; a heading containing a
// link would keep the URL's letters, which GitHub does not (no page here has one).
func GitHubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.Pc):
			b.WriteRune(r) // Ruby's \p{Word}: letters, marks, numbers, '_' and its kin
		}
	}
	return b.String()
}
