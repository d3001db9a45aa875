package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/build/doccheck"
	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// TestRepositoryWorkflows is the policy itself, over the real .github and the real Makefile.
func TestRepositoryWorkflows(t *testing.T) {
	t.Parallel()
	const root = "../../.."
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	targets, err := doccheck.Targets(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	probs, st, err := Check(root, targets)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
	t.Logf("%+v", st)
	// ci and release; checkout, setup-go, login, two provenance steps; make release and
	// release-subjects; services, e2e, deploy/matrix and more.
	if st.Workflows < 2 || st.Uses < 6 || st.MakeTargets < 2 || st.GoModules < 10 {
		t.Errorf("checked too little to mean anything: %+v", st)
	}
}

// TestBadFixture proves each rule fails: testdata/bad holds one of each mistake.
func TestBadFixture(t *testing.T) {
	t.Parallel()
	const root = "testdata/bad"
	targets, err := doccheck.Targets(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	probs, st, err := Check(root, targets)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{
		`.github/dependabot.yml:0: gomod: /gone has no go.mod`,
		`.github/dependabot.yml:0: gomod: /modB (it has a go.mod) is not listed`,
		`.github/dependabot.yml:0: no github-actions update for "/"`,
		`.github/workflows/ci.yml:1: no step runs ` + "`bash .ci/run`" + ` (make test, what a contributor runs)`,
		`.github/workflows/ci.yml:3: top-level permissions "write-all": want ` + "`{}`" + ` or a read-only map`,
		`.github/workflows/ci.yml:9: job test: id-token: write is allowed only in release.yml's release job`,
		`.github/workflows/ci.yml:11: uses "actions/checkout@v7": pin it by full commit SHA (owner/repo@<40 hex>)`,
		`.github/workflows/ci.yml:12: uses "actions/setup-go@b7ad1dad31e06c5925ef5d2fc7ad053ef454303e": say which release the SHA is in a comment (# vX.Y.Z)`,
		"	.github/workflows/ci.yml:14: job test: `make ghost`: no such target in the Makefile",
		"	.github/workflows/ci.yml:14: job test: `make tets`: no such target in the Makefile",
		`.github/workflows/ci.yml:15: job test: ${{ }} inside run: pass the value through env: and quote the variable`,
		`.github/workflows/extra.yml:4: top-level permission contents: write: grant it in the job that needs it`,
		`.github/workflows/extra.yml:9: job a: permissions "read-all": want a map naming each permission`,
		`.github/workflows/extra.yml:11: job a: run: does not parse as bash: 1:1: ` + "`if`" + ` must be followed by a statement list`,
		`.github/workflows/release.yml:1: no step runs ` + "`make release`",
		"	.github/workflows/release.yml:1: no top-level permissions: declare `permissions: {}` so a job gets only what it asks for",
		`.github/workflows/release.yml:7: job publish: packages: write is allowed only in release.yml's release job`,
		`.github/workflows/release.yml:9: uses "docker://alpine:3": pin it by full commit SHA (owner/repo@<40 hex>)`,
		`.github/workflows/release.yml:20: uses "owner/repo/.github/workflows/x.yml@main": pin it by full commit SHA (owner/repo@<40 hex>)`,
	}
	for i := range want {
		want[i] = strings.TrimPrefix(want[i], "\t")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The release job's id-token and packages, the local action and the pinned checkout pass.
	if st.Workflows != 3 || st.Jobs != 5 || st.Uses != 6 || st.GoModules != 2 {
		t.Errorf("stats %+v, want 3 workflows, 5 jobs, 6 uses and 2 Go modules", st)
	}
}

func TestRunsCIScript(t *testing.T) {
	t.Parallel()
	for script, want := range map[string]bool{
		"bash .ci/run\n":              true,
		"set -e\n  bash  .ci/run \n":  true,
		"bash .ci/run --not-quite\n":  false,
		"echo bash .ci/run\n":         false,
		"# bash .ci/run\nmake test\n": false,
	} {
		if got := runsCIScript(script); got != want {
			t.Errorf("runsCIScript(%q) = %v, want %v", script, got, want)
		}
	}
}

// TestReleaseSubjects runs `make release-subjects`, the step between `make release` and the
// provenance attestation of the images, on a release of every image of matrix.Images().
func TestReleaseSubjects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := matrix.Release{Registry: "ghcr.io/meshdemo", Version: "v1.2.3", Revision: "r", Created: "c"}
	var want strings.Builder
	for i, im := range matrix.Images() {
		hex := fmt.Sprintf("%064x", i+1)
		repo := r.Registry + "/" + im.Name
		r.Images = append(r.Images, matrix.ReleasedImage{Name: im.Name, Repository: repo, Digest: "sha256:" + hex,
			Platforms: []matrix.ReleasedPlatform{{Platform: "linux/amd64", Digest: "sha256:" + hex, Size: 1}}})
		fmt.Fprintf(&want, "%s  %s\n", hex, repo)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, matrix.ReleaseFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runMake := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "release-subjects", "RELEASE_DIR="+dir)
		cmd.Dir = "../../.."
		// Run from inside make (make test-workflows), it must not inherit that make's flags.
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return k == "MAKEFLAGS" || k == "MFLAGS" || k == "MAKELEVEL" || k == "GNUMAKEFLAGS"
		})
		return cmd.CombinedOutput()
	}
	if out, err := runMake(); err != nil {
		t.Fatalf("make release-subjects: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "images.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Errorf("images.sha256:\n%s\nwant:\n%s", got, want.String())
	}
	// A release missing an image must fail, and leave no subjects file behind.
	r.Images = r.Images[1:]
	data, _ = json.Marshal(r)
	if err := os.WriteFile(filepath.Join(dir, matrix.ReleaseFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "images.sha256")); err != nil {
		t.Fatal(err)
	}
	if out, err := runMake(); err == nil || !strings.Contains(string(out), "missing") {
		t.Errorf("make release-subjects of an incomplete release: %v\n%s\nwant a failure naming the missing image", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "images.sha256")); err == nil {
		t.Error("images.sha256 written for an incomplete release")
	}
}
