package preflight

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/config"
	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/docker"
	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/output/log"
	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/latest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// baseImages records the registry images skaffold's walk asked about. The stand-in for
// docker.RetrieveImage answers "no ONBUILD triggers, no WORKDIR": the test runs with neither a
// Docker daemon nor a registry, and our Dockerfiles set WORKDIR themselves and use no ONBUILD
// base. The rest of the walk (build args, stages, COPY sources, globs, .dockerignore) is
// skaffold's.
var baseImages sync.Map

func TestMain(m *testing.M) {
	log.SetLevel(log.WarnLevel) // skaffold's global logger: no "applying profile" lines
	docker.RetrieveImage = func(_ context.Context, image string, _ docker.Config) (*v1.ConfigFile, error) {
		baseImages.Store(image, true)
		return &v1.ConfigFile{}, nil
	}
	os.Exit(m.Run())
}

// repoRoot is four levels above this package (build/tools/skaffold/preflight).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "build", "istio-version")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// skaffoldFiles is every skaffold.yaml of the repository (the root one and the load tester's).
func skaffoldFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || slices.Contains([]string{"bin", "dist", "testdata", "node_modules"}, d.Name())) {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "skaffold.yaml" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, filepath.Join(root, "skaffold.yaml")) || !slices.Contains(files, filepath.Join(root, "loadtest", "skaffold.yaml")) {
		t.Fatalf("skaffold.yaml files %v: the root and loadtest/ ones are missing", files)
	}
	return files
}

// load parses file from its own folder (where skaffold is run) and returns its configs.
func load(t *testing.T, file string, profiles ...string) []*latest.SkaffoldConfig {
	t.Helper()
	t.Chdir(filepath.Dir(file))
	cfgs, err := Load(context.Background(), file, profiles...)
	if err != nil {
		t.Fatalf("skaffold cannot parse %s %v: %v", file, profiles, err)
	}
	return cfgs
}

func profileNames(cfgs []*latest.SkaffoldConfig) []string {
	var names []string
	for _, c := range cfgs {
		for _, p := range c.Profiles {
			names = append(names, p.Name)
		}
	}
	return names
}

// Every artifact of every skaffold.yaml, under every profile, in `dev` and in `run`, resolves its
// source dependencies with skaffold's own code, and they are the right files: a docker artifact
// depends on its Dockerfile and on its workload's sources, never on a test file (the
// .dockerignore keeps those out of the context).
func TestEveryArtifactResolvesItsDependencies(t *testing.T) {
	root := repoRoot(t)
	dockerArtifacts := 0
	for _, file := range skaffoldFiles(t, root) {
		rel, _ := filepath.Rel(root, file)
		for _, profile := range append([]string{""}, profileNames(load(t, file))...) {
			var profiles []string
			if profile != "" {
				profiles = []string{profile}
			}
			cfgs := load(t, file, profiles...)
			artifacts := Artifacts(cfgs)
			if len(artifacts) == 0 {
				t.Errorf("%s %v: no artifacts", rel, profiles)
			}
			for _, mode := range []config.RunMode{config.RunModes.Dev, config.RunModes.Run} {
				deps, err := Dependencies(context.Background(), mode, artifacts)
				if err != nil {
					t.Errorf("%s %v, skaffold %s: %v", rel, profiles, mode, err)
					continue
				}
				for _, a := range artifacts {
					checkDependencies(t, root, a, deps[a.ImageName])
					if a.DockerArtifact != nil && mode == config.RunModes.Run && profile == "" {
						dockerArtifacts++
					}
				}
			}
		}
	}
	if dockerArtifacts != 4 {
		t.Errorf("%d docker artifacts, want the four workloads", dockerArtifacts)
	}
	if _, ok := baseImages.Load("golang:1.26-bookworm"); !ok {
		t.Error("skaffold never looked up the Go builder image: the walk did not reach the build stage")
	}
}

func checkDependencies(t *testing.T, root string, a *latest.Artifact, deps []string) {
	t.Helper()
	if len(deps) == 0 {
		t.Errorf("%s: no dependencies", a.ImageName)
		return
	}
	// Paths are relative to the artifact's context, like the context itself (we run from the
	// config's folder, as skaffold does).
	for i, d := range deps {
		abs, err := filepath.Abs(d)
		if err != nil {
			t.Fatal(err)
		}
		deps[i] = abs
	}
	var tests []string
	for _, d := range deps {
		if strings.HasSuffix(d, "_test.go") || strings.Contains(d, "testdata/") {
			tests = append(tests, d)
		}
	}
	if len(tests) != 0 {
		t.Errorf("%s depends on %d test files (%s, ...): a test change would rebuild the image", a.ImageName, len(tests), tests[0])
	}
	if a.DockerArtifact == nil {
		return
	}
	dockerfile, err := filepath.Abs(filepath.Join(a.Workspace, a.DockerArtifact.DockerfilePath))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{dockerfile, filepath.Join(root, "services", "go.mod")}
	if w := a.DockerArtifact.BuildArgs["WORKLOAD"]; w != nil {
		want = append(want, filepath.Join(root, "services", *w, "main.go"))
	}
	for _, w := range want {
		if !slices.Contains(deps, w) {
			t.Errorf("%s: dependencies lack %s (%d files)", a.ImageName, w, len(deps))
		}
	}
}

// The single Dockerfile the repository had before (testdata/Dockerfile.single-file: a `prebuilt`
// stage copying bin/${TARGETOS}_${TARGETARCH}/${WORKLOAD} next to the multi-stage build) stops
// skaffold before any build: the walk visits every stage with only skaffold.yaml's build args.
func TestSingleDockerfileWithPrebuiltStageFails(t *testing.T) {
	root := repoRoot(t)
	fixture, err := filepath.Abs("testdata/Dockerfile.single-file")
	if err != nil {
		t.Fatal(err)
	}
	cfgs := load(t, filepath.Join(root, "skaffold.yaml"))
	artifacts := Artifacts(cfgs)
	for _, a := range artifacts {
		if a.DockerArtifact == nil {
			t.Fatalf("%s is not a docker artifact", a.ImageName)
		}
		a.DockerArtifact.DockerfilePath = fixture
	}
	_, err = Dependencies(context.Background(), config.RunModes.Run, artifacts)
	if err == nil || !strings.Contains(err.Error(), "file pattern [bin/_/client] must match at least one file") {
		t.Fatalf("want skaffold's glob error for bin/_/client, got %v", err)
	}
}

// kindLoadable checks that skaffold builds every docker artifact as one image `kind load
// docker-image` can import from Docker's containerd image store: BuildKit through the docker CLI
// (the only way skaffold passes cliFlags), no provenance or SBOM attestation, no multi-platform
// index.
func kindLoadable(cfgs []*latest.SkaffoldConfig) []string {
	var problems []string
	for _, c := range cfgs {
		local := c.Build.LocalBuild
		if local == nil || local.UseBuildkit == nil || !*local.UseBuildkit || local.Push == nil || *local.Push {
			problems = append(problems, "build.local must set useBuildkit: true and push: false")
		}
		if len(c.Build.Platforms) > 1 {
			problems = append(problems, fmt.Sprintf("build.platforms %v: a multi-platform index does not load into kind", c.Build.Platforms))
		}
		for _, a := range c.Build.Artifacts {
			if a.DockerArtifact == nil {
				continue
			}
			if len(a.Platforms) > 1 {
				problems = append(problems, fmt.Sprintf("%s: platforms %v", a.ImageName, a.Platforms))
			}
			args, err := DockerBuildArgs(config.RunModes.Dev, a, a.ImageName+":dev")
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", a.ImageName, err))
				continue
			}
			for _, want := range []string{"--provenance=false", "--sbom=false"} {
				if !slices.Contains(args, want) {
					problems = append(problems, fmt.Sprintf("%s: docker build %v lacks %s", a.ImageName, args, want))
				}
			}
		}
	}
	return problems
}

// The root skaffold.yaml, under every profile, builds images kind can load; the same file
// without the attestation flags, or with two platforms, does not pass.
func TestImagesLoadIntoKind(t *testing.T) {
	root := repoRoot(t)
	file := filepath.Join(root, "skaffold.yaml")
	for _, profile := range append([]string{""}, profileNames(load(t, file))...) {
		var profiles []string
		if profile != "" {
			profiles = []string{profile}
		}
		if p := kindLoadable(load(t, file, profiles...)); len(p) != 0 {
			t.Errorf("profile %q: %v", profile, p)
		}
	}
	original, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"attestations on": {"        cliFlags: [--provenance=false, --sbom=false]\n", ""},
		"sbom on":         {"--sbom=false]", "--sbom=true]"},
		"two platforms":   {"  local:\n", "  platforms: [linux/amd64, linux/arm64]\n  local:\n"},
		"daemon API":      {"    useBuildkit: true\n", ""},
	} {
		if !bytes.Contains(original, []byte(edit[0])) {
			t.Errorf("%s: fixture no longer applies", name)
			continue
		}
		dir := t.TempDir()
		broken := filepath.Join(dir, "skaffold.yaml")
		if err := os.WriteFile(broken, bytes.ReplaceAll(original, []byte(edit[0]), []byte(edit[1])), 0o644); err != nil {
			t.Fatal(err)
		}
		if p := kindLoadable(load(t, broken)); len(p) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}

// runtimeHalf is the final stage of a Dockerfile, parsed by BuildKit: every instruction but the
// COPY of the binary and the ARGs (the two files declare their build args differently).
func runtimeHalf(dockerfile []byte) ([]string, error) {
	ast, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, err
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no stage")
	}
	var out []string
	copies := 0
	for _, c := range stages[len(stages)-1].Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
		case *instructions.CopyCommand:
			copies++
			if c.DestPath != "/workload" {
				return nil, fmt.Errorf("final stage copies to %s, want /workload", c.DestPath)
			}
		default:
			out = append(out, fmt.Sprint(c))
		}
	}
	if copies != 1 {
		return nil, fmt.Errorf("final stage has %d COPY instructions, want the binary's only", copies)
	}
	return out, nil
}

// build/Dockerfile (skaffold, compose) and build/Dockerfile.prebuilt (make images, container
// tests) make the same runtime image: labels, user, ports, stop signal, health check and
// entrypoint are the same instructions, so the container tests prove what skaffold deploys.
func TestBothDockerfilesShareTheRuntime(t *testing.T) {
	root := repoRoot(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(root, "build", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	multi, prebuilt := read("Dockerfile"), read("Dockerfile.prebuilt")
	a, err := runtimeHalf(multi)
	if err != nil {
		t.Fatalf("build/Dockerfile: %v", err)
	}
	b, err := runtimeHalf(prebuilt)
	if err != nil {
		t.Fatalf("build/Dockerfile.prebuilt: %v", err)
	}
	if len(a) < 6 || !slices.Equal(a, b) {
		t.Fatalf("runtime halves differ:\nDockerfile:          %q\nDockerfile.prebuilt: %q", a, b)
	}
	// The check can fail: one changed instruction in either file is a difference.
	for name, edit := range map[string][2]string{
		"user":        {"USER 65532:65532", "USER 0:0"},
		"healthcheck": {"--retries=3", "--retries=5"},
		"label":       {`org.opencontainers.image.vendor="meshdemo"`, `org.opencontainers.image.vendor="other"`},
	} {
		if !bytes.Contains(prebuilt, []byte(edit[0])) {
			t.Errorf("%s: fixture no longer applies", name)
			continue
		}
		c, err := runtimeHalf(bytes.Replace(prebuilt, []byte(edit[0]), []byte(edit[1]), 1))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(a, c) {
			t.Errorf("%s: changed prebuilt runtime still equal", name)
		}
	}
}

// The root skaffold.yaml has one profile per deploy/scenarios directory of every flavour
// (<scenario>, gateway-api-<s>, ambient-<s> and the presets; the sidecar default is the
// no-profile path), and skaffold's own parser, applying each profile's patches, points the
// render at that directory. TestEveryArtifactResolvesItsDependencies walks every one of them.
func TestEveryScenarioHasItsProfile(t *testing.T) {
	root := repoRoot(t)
	file := filepath.Join(root, "skaffold.yaml")
	entries, err := os.ReadDir(filepath.Join(root, "deploy", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "default" {
			want = append(want, e.Name())
		}
	}
	got := slices.Sorted(slices.Values(profileNames(load(t, file))))
	if !slices.Equal(got, want) || len(want) < 41 {
		t.Fatalf("skaffold.yaml profiles %v\nwant one per deploy/scenarios directory but default %v", got, want)
	}
	paths := func(profiles ...string) []string {
		var out []string
		for _, c := range load(t, file, profiles...) {
			if k := c.Pipeline.Render.Kustomize; k != nil {
				for _, p := range k.Paths {
					if rel, err := filepath.Rel(root, p); err == nil && filepath.IsAbs(p) {
						p = rel
					}
					out = append(out, p)
				}
			}
		}
		return out
	}
	if p := paths(); !slices.Equal(p, []string{"deploy/scenarios/default"}) {
		t.Errorf("no profile: kustomize paths %v, want deploy/scenarios/default", p)
	}
	for _, name := range want {
		if p := paths(name); !slices.Equal(p, []string{"deploy/scenarios/" + name}) {
			t.Errorf("profile %s: kustomize paths %v, want deploy/scenarios/%s", name, p, name)
		}
	}
}
