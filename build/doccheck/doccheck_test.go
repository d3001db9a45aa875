package doccheck

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRepositoryDocs is the check itself: the README, docs/ and istio/sidecar/components/README.md
// against the real tree and the real Makefile.
func TestRepositoryDocs(t *testing.T) {
	t.Parallel()
	const root = "../.."
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	targets, err := Targets(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"test", "run", "help"} { // a parse that finds nothing must not pass
		if !targets[want] {
			t.Fatalf("make's database has no %q target: the database parse is broken", want)
		}
	}
	pages, err := Pages(root)
	if err != nil {
		t.Fatal(err)
	}
	probs, st, err := Check(root, pages, targets)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
	t.Logf("%d pages, %d relative links (%d with an anchor), %d make targets named, %d targets in the Makefile",
		st.Pages, st.Links, st.Anchors, st.MakeTargets, len(targets))
	if st.Pages < 3 || st.Links == 0 || st.Anchors == 0 || st.MakeTargets == 0 {
		t.Errorf("checked too little to mean anything: %+v", st)
	}
	// The README is a front door: details go to docs/<topic>.md.
	readme, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range CheckDeclared("README.md", readme) {
		t.Error(p)
	}
	if n := bytes.Count(readme, []byte("\n")); n > maxReadmeLines {
		t.Errorf("README.md has %d lines, more than %d: move details to a page under docs/", n, maxReadmeLines)
	}
}

const maxReadmeLines = 250

// TestBrokenFixture proves the check fails: testdata/site holds one of each mistake.
func TestBrokenFixture(t *testing.T) {
	t.Parallel()
	const root = "testdata/site"
	targets, err := Targets(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	pages, err := Pages(root)
	if err != nil {
		t.Fatal(err)
	}
	probs, st, err := Check(root, pages, targets)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{
		`README.md:8: link "docs/nope.md": docs/nope.md does not exist`,
		`README.md:8: link "docs/page.md#no-such-heading": docs/page.md has no heading with anchor #no-such-heading`,
		`README.md:8: link "../../outside.md" points outside the repository`,
		`README.md:8: link "parts/test.mk#top": anchor on a file that is not Markdown`,
		"README.md:11: `make ghost`: no such target in the Makefile",
		"README.md:11: `make made-up-target`: no such target in the Makefile",
		"README.md:14: `make test-two`: no such target in the Makefile",
		"README.md:19: sh block does not parse as shell: 1:1: `if` must be followed by a statement list",
		`docs/page.md:9: link "img.png": docs/img.png does not exist`,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Good links: docs/page.md, #a-section, #quick-start_now, #a-section-1, #L1, ../README.md#quick-start_now.
	if st.Links != 6 || st.MakeTargets != 8 {
		t.Errorf("stats %+v, want 6 good links and 8 make targets named", st)
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	targets, err := Targets(context.Background(), "testdata/site")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range targets {
		got = append(got, k)
	}
	slices.Sort(got)
	// ghost is declared .PHONY with no rule: `make ghost` would do nothing and succeed.
	if want := []string{"build", "run", "test"}; !slices.Equal(got, want) {
		t.Errorf("targets %q, want %q", got, want)
	}
	if _, err := Targets(context.Background(), t.TempDir()); err == nil {
		t.Error("no error for a directory without a Makefile")
	}
}

func TestMakeTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ script, want string }{
		{"make run", "run"},
		{"make kind-up istio-install deploy", "kind-up istio-install deploy"},
		{"make bench BENCH_FLAGS='-c 64 -d 20s'", "bench"},
		{"make render SCENARIO=retries | kubectl apply -f -", "render"},
		{"make loadtest-image && kind load docker-image x", "loadtest-image"},
		{"KEEP_CLUSTER=1 make e2e  # make not-this", "e2e"},
		{"cd e2e && (make -f other.mk -j4 x)", "x"},
		{"$(MAKE) images; cmake foo; make", ""},
	} {
		got, err := MakeTargets(tc.script)
		if err != nil {
			t.Fatalf("%q: %v", tc.script, err)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q: targets %q, want %q", tc.script, got, tc.want)
		}
	}
}

// TestGitHubAnchor pins anchors as GitHub renders them (checked against github.com pages).
func TestGitHubAnchor(t *testing.T) {
	t.Parallel()
	for heading, want := range map[string]string{
		"Demo 1 — slow service vs route timeout (→ 504)":               "demo-1--slow-service-vs-route-timeout--504",
		"Performance benchmark (`make bench`)":                         "performance-benchmark-make-bench",
		"Where the chain's extra CPU went (first profile, 2026-11-22)": "where-the-chains-extra-cpu-went-first-profile-2026-11-22",
		"The `X-Meshdemo-Fault` header":                                "the-x-meshdemo-fault-header",
		"snake_case stays":                                             "snake_case-stays",
		"Überblick":                                                    "überblick",
	} {
		if got := GitHubAnchor(heading); got != want {
			t.Errorf("GitHubAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestDeclaredTablesBroken: each way the README's tables can drift from deploy/matrix is
// reported, on a copy of the real README.
func TestDeclaredTablesBroken(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if probs := CheckDeclared("README.md", readme); len(probs) != 0 {
		t.Fatalf("the real README must pass first: %v", probs)
	}
	lineOf := func(prefix string) string {
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(l, prefix) {
				return l + "\n"
			}
		}
		t.Fatalf("no line starts with %q", prefix)
		return ""
	}
	mirroring, retries := lineOf("| `mirroring` |"), lineOf("| `retries` |")
	for _, tc := range []struct{ name, old, new, want string }{
		{"row missing", mirroring, "", "want scenario `mirroring`"},
		{"purpose changed", mirroring, strings.Replace(mirroring, "copied", "sent", 1), "deploy/matrix says"},
		{"rows swapped", retries + lineOf("| `outlier-detection` |"), lineOf("| `outlier-detection` |") + retries, "want scenario `retries`"},
		{"undeclared row", mirroring, mirroring + "| `chaos` | everything breaks | - |\n", "does not declare"},
		{"flavour profile wrong", "`ambient` / `ambient-<scenario>`", "`waypoint` / `ambient-<scenario>`", "want `ambient` first"},
		{"no scenario table", scenarioTableHeader, "| scenario | shows | details |", "no table headed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := strings.Replace(string(readme), tc.old, tc.new, 1)
			probs := CheckDeclared("README.md", []byte(broken))
			if broken == string(readme) {
				t.Fatal("fixture no longer applies")
			}
			if !slices.ContainsFunc(probs, func(p Problem) bool { return strings.Contains(p.Msg, tc.want) }) {
				t.Errorf("want a problem containing %q, got %v", tc.want, probs)
			}
		})
	}
}
