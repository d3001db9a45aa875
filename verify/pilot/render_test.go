package pilot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered manifest, decoded into plain maps so that broken fixtures can edit it.
type object map[string]any

func (o object) kind() string       { return str(o, "kind") }
func (o object) apiVersion() string { return str(o, "apiVersion") }
func (o object) name() string       { return str(o, "metadata", "name") }
func (o object) namespace() string  { return str(o, "metadata", "namespace") }

// isIstio reports whether the object is Istio configuration (fed to the config store) rather
// than a Kubernetes object (fed to the fake API server).
func (o object) isIstio() bool {
	return strings.Contains(strings.SplitN(o.apiVersion(), "/", 2)[0], "istio.io")
}

// isGatewayAPI reports whether the object is a Kubernetes Gateway API resource: fed to the fake
// API server, where istiod's Gateway API controller watches it.
func (o object) isGatewayAPI() bool {
	return strings.SplitN(o.apiVersion(), "/", 2)[0] == "gateway.networking.k8s.io"
}

func (o object) spec() map[string]any { return mapAt(o, "spec") }

// field walks nested maps; it returns nil when any step is missing.
func field(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func str(m map[string]any, keys ...string) string {
	s, _ := field(m, keys...).(string)
	return s
}

func mapAt(m map[string]any, keys ...string) map[string]any {
	mm, _ := field(m, keys...).(map[string]any)
	return mm
}

func listAt(m map[string]any, keys ...string) []any {
	l, _ := field(m, keys...).([]any)
	return l
}

func stringMap(m map[string]any, keys ...string) map[string]string {
	out := map[string]string{}
	for k, v := range mapAt(m, keys...) {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// repoRoot finds the repository root (the directory holding go.work) above the test's
// working directory, so the tests read the same manifests a developer edits.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (a directory with go.work) not found above the working directory")
		}
		dir = parent
	}
}

// manifestTrees are the repository directories a scenario render reads.
var manifestTrees = []string{"deploy", "istio"}

// copyTree copies a repository directory into the in-memory tree rooted at /repo.
func copyTree(t testing.TB, mem filesys.FileSystem, tree string) {
	t.Helper()
	root := repoRoot(t)
	err := filepath.WalkDir(filepath.Join(root, tree), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/repo", filepath.ToSlash(rel)), b)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", tree, err)
	}
}

// loadManifests copies deploy/ and istio/ into an in-memory file system rooted at /repo, so a
// render never writes into the checkout and fixtures can add files next to the real ones.
func loadManifests(t testing.TB) filesys.FileSystem {
	t.Helper()
	root := repoRoot(t)
	mem := filesys.MakeFsInMemory()
	for _, tree := range manifestTrees {
		src := filepath.Join(root, tree)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("manifest tree %s missing: %v", tree, err)
		}
		copyTree(t, mem, tree)
	}
	return mem
}

// render builds a scenario of a flavour as a cluster gets it, the declaration's
// matrix.ClusterIn: deploy/base and the flavour's Istio base, the flavour's leading components,
// the canary with its PostgreSQL, then the scenario's component ("" renders the base alone, with
// the canary and the database: the preset canary).
func render(t testing.TB, f matrix.Flavour, scenario string) []object {
	t.Helper()
	mem := loadManifests(t)
	name := scenario
	if name == "" {
		name = "canary"
	}
	return renderComposition(t, mem, matrix.ClusterIn(f, name), "/repo/pilot-render")
}

// renderComposition writes c as the kustomization of dir (under /repo) and builds it.
func renderComposition(t testing.TB, mem filesys.FileSystem, c matrix.Composition, dir string) []object {
	t.Helper()
	for _, comp := range c.Components {
		if !mem.Exists(path.Join("/repo", comp, "kustomization.yaml")) {
			t.Fatalf("component %s/kustomization.yaml is missing", comp)
		}
	}
	rel := strings.TrimPrefix(dir, "/repo/")
	if err := mem.WriteFile(path.Join(dir, "kustomization.yaml"), []byte(c.Kustomization(rel, ""))); err != nil {
		t.Fatal(err)
	}
	return kustomizeBuild(t, mem, dir)
}

// toYAML joins objects into one multi-document stream, the input format of
// FakeOptions.ConfigString and FakeOptions.KubernetesObjectString.
func toYAML(objs []object) (string, error) {
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(map[string]any(o))
		if err != nil {
			return "", fmt.Errorf("marshal %s/%s: %w", o.kind(), o.name(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	b.WriteString("\n")
	return b.String(), nil
}

// findObjects returns the objects of one kind whose spec satisfies keep.
func findObjects(objs []object, kind string, keep func(o object) bool) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind && (keep == nil || keep(o)) {
			out = append(out, o)
		}
	}
	return out
}

var errNoTarget = errors.New("mutation found nothing to change")

// kustomizeBuild runs kustomize over one directory of the in-memory copy of the trees (every
// render of this package goes through it).
func kustomizeBuild(t testing.TB, mem filesys.FileSystem, dir string) []object {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, dir)
	if err != nil {
		t.Fatalf("kustomize build of %s: %v", dir, err)
	}
	var objs []object
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("decode %s: %v", r.CurId(), err)
		}
		objs = append(objs, object(m))
	}
	if len(objs) == 0 {
		t.Fatalf("%s rendered no objects", dir)
	}
	return objs
}
