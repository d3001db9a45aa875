package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/meshdemo/meshdemo/deploy/matrix"
	spdxjson "github.com/spdx/tools-golang/json"
)

// commitTime is the fixture repository's commit time: the one time the images may carry.
var commitTime = time.Date(2026, 11, 3, 14, 15, 16, 0, time.UTC)

// fixture is the image the tests release: testdata/fixture, a main package with one
// dependency module.
var fixture = matrix.Image{Name: "fixture", Module: "fixture", Package: ".", Binary: "/fixture"}

// fixtureRepo copies testdata/fixture into a fresh git repository with one commit at
// commitTime and returns the repository's root and the commit.
func fixtureRepo(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, "fixture"), os.DirFS("testdata/fixture")); err != nil {
		t.Fatal(err)
	}
	date := strconv.FormatInt(commitTime.Unix(), 10) + " +0000"
	env := append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date, "GIT_CONFIG_GLOBAL=/dev/null")
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "fixture"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = root, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return root, strings.TrimSpace(string(out))
}

// startRegistry serves go-containerregistry's in-memory registry on loopback and returns its
// host:port (plain HTTP: loopback registries are spoken to over http).
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func releaseFixture(t *testing.T, root, reg, out string) (matrix.Release, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	c := config{root: root, registry: reg, version: "v0.0.0-test", out: out, targets: []matrix.Image{fixture}, maxSize: MaxSize}
	if err := release(ctx, c, &stdout); err != nil {
		t.Fatalf("release: %v\n%s", err, stdout.String())
	}
	data, err := os.ReadFile(filepath.Join(out, matrix.ReleaseFile))
	if err != nil {
		t.Fatal(err)
	}
	var r matrix.Release
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r, stdout.String()
}

func TestReleaseFixture(t *testing.T) {
	t.Parallel()
	root, rev := fixtureRepo(t)
	reg := startRegistry(t) + "/meshdemo"
	tmp := t.TempDir()
	r1, out1 := releaseFixture(t, root, reg, filepath.Join(tmp, "one"))
	r2, _ := releaseFixture(t, root, reg, filepath.Join(tmp, "two"))

	if len(r1.Images) != 1 {
		t.Fatalf("images %+v, want the fixture", r1.Images)
	}
	im := r1.Images[0]
	t.Run("the second release has the same digests", func(t *testing.T) {
		if r2.Images[0].Digest != im.Digest || !slices.Equal(r2.Images[0].Platforms, im.Platforms) {
			t.Errorf("first %s %v, second %s %v", im.Digest, im.Platforms, r2.Images[0].Digest, r2.Images[0].Platforms)
		}
	})
	t.Run("images.json", func(t *testing.T) {
		if r1.Registry != reg || r1.Version != "v0.0.0-test" || r1.Revision != rev || r1.Created != "2026-11-03T14:15:16Z" {
			t.Errorf("registry %q version %q revision %q created %q", r1.Registry, r1.Version, r1.Revision, r1.Created)
		}
		if im.Repository != reg+"/fixture" || !strings.HasPrefix(im.Digest, "sha256:") {
			t.Errorf("repository %q digest %q", im.Repository, im.Digest)
		}
	})
	t.Run("a clean tree gives no warning", func(t *testing.T) {
		if strings.Contains(out1, "warning") {
			t.Errorf("output warns about a committed tree:\n%s", out1)
		}
	})
	t.Run("output names the index digest and each platform's digest and size", func(t *testing.T) {
		for _, want := range []string{im.Ref(), im.Platforms[0].Digest, strconv.FormatInt(im.Platforms[0].Size, 10), im.Platforms[1].Digest, strconv.FormatInt(im.Platforms[1].Size, 10), " MiB"} {
			if !strings.Contains(out1, want) {
				t.Errorf("output lacks %q:\n%s", want, out1)
			}
		}
	})

	ref, err := name.ParseReference(im.Ref())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("the index is not in the registry by digest: %v", err)
	}
	t.Run("the version tag is the index", func(t *testing.T) {
		tag, err := name.ParseReference(im.Repository + ":v0.0.0-test")
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(tag)
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest.String() != im.Digest {
			t.Errorf("tag v0.0.0-test is %s, want %s", d.Digest, im.Digest)
		}
	})
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for i, d := range manifest.Manifests {
		plat := d.Platform.OS + "/" + d.Platform.Architecture
		plats = append(plats, plat)
		if im.Platforms[i].Platform != plat || im.Platforms[i].Digest != d.Digest.String() {
			t.Errorf("index entry %d %s %s, images.json says %+v", i, plat, d.Digest, im.Platforms[i])
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(plat+" image", func(t *testing.T) { checkImage(t, img, rev, d.Platform.Architecture) })
	}
	if !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("index platforms %v, want exactly linux/amd64 and linux/arm64", plats)
	}

	t.Run("SBOM lists the fixture's modules", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(tmp, "one", "sbom", "fixture.spdx.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := spdxjson.Read(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range doc.Packages {
			names = append(names, p.PackageName+"@"+p.PackageVersion)
		}
		for _, want := range []string{"example.com/fixture@v0.0.0-test", "example.com/greet@v0.0.0-test", "stdlib@" + strings.TrimPrefix(runtime.Version(), "go")} {
			if !slices.Contains(names, want) {
				t.Errorf("SBOM packages %v lack %s", names, want)
			}
		}
		other, _ := os.ReadFile(filepath.Join(tmp, "two", "sbom", "fixture.spdx.json"))
		if !bytes.Equal(data, other) {
			t.Error("the two releases wrote different SBOMs")
		}
	})
}

// checkImage checks one platform's image: config and the single-file layer; on a matching
// host it runs the binary taken out of the layer.
func checkImage(t *testing.T, img v1.Image, rev, arch string) {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/fixture"}) || !cf.Created.Time.Equal(commitTime) {
		t.Errorf("user %q entrypoint %v created %v", c.User, c.Entrypoint, cf.Created)
	}
	if c.Labels["org.opencontainers.image.revision"] != rev || c.Labels["org.opencontainers.image.version"] != "v0.0.0-test" || c.Labels["org.opencontainers.image.created"] != "2026-11-03T14:15:16Z" {
		t.Errorf("labels %v", c.Labels)
	}
	if cf.Architecture != arch || cf.OS != "linux" {
		t.Errorf("config platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v %v, want one", layers, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "fixture" || h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(commitTime) {
		t.Errorf("layer entry %q mode %o uid %d gid %d mtime %v", h.Name, h.Mode, h.Uid, h.Gid, h.ModTime)
	}
	bin, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("the layer holds more than the binary: %v", err)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != arch {
		return // the binary is for another platform; its bytes were checked above
	}
	p := filepath.Join(t.TempDir(), "fixture")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(p, "release").Output()
	if err != nil || string(out) != "hello, release\n" {
		t.Errorf("the image's binary printed %q, %v", out, err)
	}
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	root, _ := fixtureRepo(t)
	c := config{root: root, registry: startRegistry(t) + "/meshdemo", version: "v1.0.0", out: t.TempDir(), targets: []matrix.Image{fixture}, maxSize: 1 << 10}
	err := release(context.Background(), c, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("a 1 KiB limit: %v, want an over-the-limit error", err)
	}
}

func TestDirtyTreeWarns(t *testing.T) {
	t.Parallel()
	root, rev := fixtureRepo(t)
	if err := os.WriteFile(filepath.Join(root, "fixture", "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := config{root: root, registry: startRegistry(t) + "/meshdemo", version: "v1.0.0", out: t.TempDir(), targets: []matrix.Image{fixture}, maxSize: MaxSize}
	if err := release(context.Background(), c, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "warning: uncommitted changes") || !strings.Contains(out.String(), "fixture/main.go") || !strings.Contains(out.String(), rev) {
		t.Errorf("no warning naming the changed file and the revision:\n%s", out.String())
	}
}

func TestGoCommandFailure(t *testing.T) {
	t.Parallel()
	root, _ := fixtureRepo(t)
	c := config{root: root, registry: startRegistry(t) + "/meshdemo", version: "v1.0.0", out: t.TempDir(), targets: []matrix.Image{fixture}, maxSize: MaxSize, goCmd: filepath.Join(t.TempDir(), "no-go")}
	err := release(context.Background(), c, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "go build") {
		t.Errorf("GO naming a missing command: %v, want the go build error", err)
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	good := []string{"-registry", "127.0.0.1:5000/meshdemo", "-version", "v1.2.3", "-out", "dist"}
	with := func(flag, value string) []string {
		args := slices.Clone(good)
		i := slices.Index(args, flag)
		return append(args[:i:i], append([]string{flag, value}, args[i+2:]...)...)
	}
	cases := map[string]struct {
		args []string
		want string // in the error; "" for none
	}{
		"good":                      {good, ""},
		"pre-release version":       {with("-version", "v0.0.0-test"), ""},
		"host registry":             {with("-registry", "ghcr.io/meshdemo"), ""},
		"version without v":         {with("-version", "1.2.3"), "-version"},
		"version of two parts":      {with("-version", "v1.2"), "-version"},
		"version latest":            {with("-version", "latest"), "-version"},
		"no version":                {[]string{"-registry", "ghcr.io/meshdemo", "-out", "dist"}, "-version"},
		"registry with a tag":       {with("-registry", "ghcr.io/meshdemo:v1"), "-registry"},
		"registry with a digest":    {with("-registry", "ghcr.io/meshdemo@sha256:00"), "-registry"},
		"registry with upper case":  {with("-registry", "ghcr.io/MeshDemo"), "-registry"},
		"registry with trailing /":  {with("-registry", "ghcr.io/meshdemo/"), "-registry"},
		"empty registry":            {with("-registry", ""), "-registry"},
		"unknown flag":              {append(slices.Clone(good), "-push"), "-push"},
		"stray argument":            {append(slices.Clone(good), "client"), "unexpected"},
		"out missing, rest correct": {[]string{"-registry", "ghcr.io/meshdemo", "-version", "v1.2.3"}, "-out"},
	}
	for name, tc := range cases {
		_, err := parseFlags(tc.args, io.Discard)
		var usage usageError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want a usage error naming %s", name, err, tc.want)
		}
	}
}

func TestRunRejectsBadFlagsBeforeBuilding(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"-registry", "ghcr.io/meshdemo", "-version", "1.0", "-out", t.TempDir()}, func(string) string { return "" }, io.Discard, io.Discard)
	var usage usageError
	if !errors.As(err, &usage) {
		t.Errorf("run with a bad version: %v, want a usage error (exit 2)", err)
	}
}

func TestWorkloadRuntimeFollowsTheDockerfile(t *testing.T) {
	t.Parallel()
	for _, im := range matrix.Images() {
		rt := runtimeOf(im)
		if im.Module != "services" {
			if rt.Healthcheck != nil || len(rt.ExposedPorts) != 0 {
				t.Errorf("%s: %+v, want no ports and no health check", im.Name, rt)
			}
			continue
		}
		if rt.Healthcheck == nil || !slices.Equal(rt.Healthcheck.Test, []string{"CMD", im.Binary, "healthcheck"}) || !slices.Equal(rt.ExposedPorts, []string{"8080/tcp", "9090/tcp"}) {
			t.Errorf("%s: %+v, want build/Dockerfile's ports and health check", im.Name, rt)
		}
	}
}
