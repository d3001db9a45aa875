package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

func TestRun(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		args    []string
		want    string // in stdout
		wantErr string
	}{
		{"scenario with canary", []string{"-root", "../../..", "weighted-split"}, "weight: 20", ""},
		{"preset", []string{"-root", "../../..", "default"}, "name: client-v1", ""},
		{"alone", []string{"-root", "../../..", "-alone", "mirroring"}, "mirrorPercentage", ""},
		{"gateway-api flavour", []string{"-root", "../../..", "-flavour", "gateway-api", "weighted-split"}, "name: server1-v2", ""},
		{"ambient flavour", []string{"-root", "../../..", "-flavour", "ambient", "default"}, "istio.io/dataplane-mode: ambient", ""},
		{"ambient alone", []string{"-root", "../../..", "-flavour", "ambient", "-alone", "authz"}, "name: waypoint-allow-nothing", ""},
		{"unknown flavour", []string{"-root", "../../..", "-flavour", "istio", "default"}, "", `unknown flavour "istio"`},
		{"unknown scenario", []string{"-root", "../../..", "nope"}, "", `unknown scenario "nope"`},
		{"preset is not a component", []string{"-root", "../../..", "-alone", "canary"}, "", "unknown scenario"},
		{"no scenario", []string{"-root", "../../.."}, "", "want one scenario"},
		{"unknown flag", []string{"-root", "../../..", "-bundle", "x"}, "", "flag provided but not defined: -bundle"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(c.args, &out)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("output lacks %q", c.want)
			}
		})
	}
}

// release writes a fabricated images.json (digests made here) into dir, edited by edit.
func release(t *testing.T, dir string, edit func(*matrix.Release)) string {
	t.Helper()
	r := matrix.Release{Registry: "127.0.0.1:5000/meshdemo", Version: "v0.0.0-test", Revision: "abc", Created: "2026-12-06T00:00:00Z"}
	for _, im := range matrix.Images() {
		sum := sha256.Sum256([]byte(im.Name))
		d := "sha256:" + hex.EncodeToString(sum[:])
		r.Images = append(r.Images, matrix.ReleasedImage{Name: im.Name, Repository: r.Registry + "/" + im.Name, Digest: d,
			Platforms: []matrix.ReleasedPlatform{{Platform: "linux/arm64", Digest: d, Size: 1}}})
	}
	if edit != nil {
		edit(&r)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, matrix.ReleaseFile)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// -release writes one bundle per profile, named matrix.BundleName, each naming the release's
// images by digest, and lists them on stdout.
func TestRunRelease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	images := release(t, dir, nil)
	out := filepath.Join(dir, "dist")
	var stdout bytes.Buffer
	if err := run([]string{"-root", "../../..", "-release", images, "-out", out}, &stdout); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range matrix.Profiles() {
		want = append(want, matrix.BundleName(p))
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, want %v", out, got, want)
	}
	if n := strings.Count(stdout.String(), "\n"); n != len(want) {
		t.Errorf("stdout lists %d files, want %d:\n%s", n, len(want), stdout.String())
	}
	ref := regexp.MustCompile(`image: 127\.0\.0\.1:5000/meshdemo/server1@sha256:[0-9a-f]{64}\n`)
	for _, name := range []string{"meshdemo-default.yaml", "meshdemo-gateway-api-canary.yaml", "meshdemo-ambient-rate-limit.yaml"} {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if !ref.Match(data) || bytes.Contains(data, []byte(":dev")) {
			t.Errorf("%s: server1 not by digest, or a :dev image left", name)
		}
	}
}

// -release refuses, with a clear message and without writing anything, a bad images.json or
// a bad command line.
func TestRunReleaseErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := release(t, t.TempDir(), nil)
	missingImage := release(t, t.TempDir(), func(r *matrix.Release) { r.Images = r.Images[:len(r.Images)-1] })
	badDigest := release(t, t.TempDir(), func(r *matrix.Release) { r.Images[1].Digest = "sha256:123" })
	notJSON := filepath.Join(dir, "not.json")
	if err := os.WriteFile(notJSON, []byte("registry: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dist")
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing image", []string{"-release", missingImage, "-out", out}, `images.json: image "loadtest" missing`},
		{"bad digest", []string{"-release", badDigest, "-out", out}, `image "server1": digest "sha256:123" is not sha256:<64 hex>`},
		{"not JSON", []string{"-release", notJSON, "-out", out}, "-release " + notJSON + ": images.json: invalid character"},
		{"no such file", []string{"-release", filepath.Join(dir, "nope.json"), "-out", out}, "no such file or directory"},
		{"no -out", []string{"-release", good}, "-release needs -out DIR"},
		{"no -release", []string{"-out", out}, "-out needs -release IMAGES_JSON"},
		{"with a scenario", []string{"-release", good, "-out", out, "canary"}, "-release renders every profile"},
		{"with -flavour", []string{"-release", good, "-out", out, "-flavour", "ambient"}, "-release renders every profile"},
		{"unknown flag", []string{"-release", good, "-out", out, "-sign"}, "flag provided but not defined: -sign"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stdout bytes.Buffer
			err := run(append([]string{"-root", "../../.."}, c.args...), &stdout)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after failed runs (%v)", out, err)
	}
}
