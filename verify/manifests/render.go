// Package manifests renders meshdemo's Kustomize trees (deploy/, istio/) the way kubectl and
// skaffold do, and checks the result: strict decoding into typed Kubernetes and Istio structs,
// plus the rules no tool checks (weights, subsets, hosts, pod conventions).
//
// Rendering happens on an in-memory copy of the repository, so a test can overlay a broken file
// and prove that a check fails, without touching the working tree.
package manifests

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Tree is an in-memory copy of the parts of the repository that Kustomize reads. A Tree is safe
// for concurrent use. Kustomize's in-memory file system is not, so every build gets a file
// system of its own, from a pool of copies (as many as GOMAXPROCS: builds run in parallel). A
// Tree keeps what it built until the next Write: the tests render the same profiles many times,
// and a kustomize build is the expensive part (about half a second under the race detector).
type Tree struct {
	mu    sync.Mutex
	files map[string][]byte // by path relative to the root
	gen   int               // bumped by every Write: older copies and builds are stale
	seq   int
	built map[string][]byte // by directory, or by "render:" + composition
	free  []memFS
	slots chan struct{} // one per build running
}

// memFS is one in-memory copy of the files, at a generation of the Tree.
type memFS struct {
	fs  filesys.FileSystem
	gen int
}

// treeRoot is where the copy lives inside the in-memory file system.
const treeRoot = "/repo"

// LoadTree copies deploy/, istio/ and loadtest/deploy/ from the repository at root into memory.
func LoadTree(root string) (*Tree, error) {
	t := &Tree{files: map[string][]byte{}, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for _, top := range []string{"deploy", "istio", "loadtest/deploy"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			r, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			t.files[filepath.ToSlash(r)] = data
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Write replaces (or adds) a file, path relative to the repository root.
func (t *Tree) Write(rel string, data []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.files[path.Clean(rel)] = bytes.Clone(data)
	t.gen++
	t.built = nil
	t.free = nil
	return nil
}

// Read returns a file of the copy, path relative to the repository root.
func (t *Tree) Read(rel string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	data, ok := t.files[path.Clean(rel)]
	if !ok {
		return nil, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	return bytes.Clone(data), nil
}

// Build runs kustomize on a directory of the tree (relative to the root). The result is the
// caller's to modify.
func (t *Tree) Build(dir string) ([]byte, error) {
	return t.cached(dir, func(mem filesys.FileSystem, _ int) ([]byte, error) { return build(mem, dir) })
}

// Render writes c as a throwaway kustomization into the tree and builds it.
func (t *Tree) Render(c matrix.Composition) ([]byte, error) {
	key := "render:" + strings.Join(c.Resources, ",") + ";" + strings.Join(c.Components, ",")
	return t.cached(key, func(mem filesys.FileSystem, seq int) ([]byte, error) {
		dir := fmt.Sprintf(".render/%d", seq)
		if err := mem.WriteFile(path.Join(treeRoot, dir, "kustomization.yaml"), []byte(c.Kustomization(dir, ""))); err != nil {
			return nil, err
		}
		return build(mem, dir)
	})
}

// cached returns the output built under key since the last Write, or builds it on a file system
// of its own and keeps it.
func (t *Tree) cached(key string, run func(mem filesys.FileSystem, seq int) ([]byte, error)) ([]byte, error) {
	t.mu.Lock()
	if out, ok := t.built[key]; ok {
		t.mu.Unlock()
		return bytes.Clone(out), nil
	}
	t.mu.Unlock()

	t.slots <- struct{}{}
	defer func() { <-t.slots }()
	mem, seq, err := t.acquire()
	if err != nil {
		return nil, err
	}
	out, err := run(mem.fs, seq)

	t.mu.Lock()
	defer t.mu.Unlock()
	if mem.gen == t.gen {
		t.free = append(t.free, mem)
		if err == nil {
			if t.built == nil {
				t.built = map[string][]byte{}
			}
			t.built[key] = out
		}
	}
	if err != nil {
		return nil, err
	}
	return bytes.Clone(out), nil
}

// acquire takes a free copy of the current files, or makes one.
func (t *Tree) acquire() (memFS, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	if n := len(t.free); n > 0 {
		mem := t.free[n-1]
		t.free = t.free[:n-1]
		return mem, t.seq, nil
	}
	mem := memFS{fs: filesys.MakeFsInMemory(), gen: t.gen}
	for rel, data := range t.files {
		if err := mem.fs.WriteFile(path.Join(treeRoot, rel), data); err != nil {
			return memFS{}, 0, err
		}
	}
	return mem, t.seq, nil
}

func build(mem filesys.FileSystem, dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(mem, path.Join(treeRoot, dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return m.AsYaml()
}
