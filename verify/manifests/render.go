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
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Scenarios are the Istio scenario components, istio/components/<name>. The same name is the
// skaffold profile, the pilot simulation test and the kind end-to-end test.
var Scenarios = []string{
	"header-routing", "weighted-split", "route-timeout", "fault-abort", "fault-delay",
	"retries", "outlier-detection", "mirroring", "authz", "hardening", "grpc-balancing", "rate-limit",
}

// Presets are the deploy/scenarios directories that are not Istio scenarios: v1 only, and v1+v2
// with the base routes.
var Presets = []string{"default", "canary"}

// Composition is one kustomization: what it builds on and which components it applies, as
// paths relative to the repository root.
type Composition struct {
	Resources  []string
	Components []string
}

// Flavour is one of the three ways meshdemo uses Istio. Every scenario exists in each.
type Flavour string

const (
	// Sidecar: a sidecar in every pod, routes as VirtualService/DestinationRule (istio/base,
	// istio/components/<name>).
	Sidecar Flavour = "sidecar"
	// GatewayAPI: sidecars, routes in the Kubernetes Gateway API only (istio/gateway-api).
	GatewayAPI Flavour = "gateway-api"
	// Ambient: no sidecars; ztunnel and the namespace's waypoint (istio/ambient).
	Ambient Flavour = "ambient"
)

// Flavours lists the flavours, sidecar first.
var Flavours = []Flavour{Sidecar, GatewayAPI, Ambient}

// ParseFlavour accepts a flavour's name; the empty string is the sidecar flavour.
func ParseFlavour(s string) (Flavour, error) {
	if s == "" {
		return Sidecar, nil
	}
	for _, f := range Flavours {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown flavour %q, want one of %v", s, Flavours)
}

// base is the flavour's Istio base kustomization.
func (f Flavour) base() string {
	if f == Sidecar {
		return "istio/base"
	}
	return "istio/" + string(f) + "/base"
}

// component is where the flavour's component of a scenario lives.
func (f Flavour) component(name string) string {
	if f == Sidecar {
		return "istio/components/" + name
	}
	return "istio/" + string(f) + "/components/" + name
}

// leading are the components a flavour applies before all others: ambient moves the namespace
// from sidecar injection to ambient mode (only a component can patch deploy/base's Namespace).
func (f Flavour) leading() []string {
	if f == Ambient {
		return []string{"istio/ambient/dataplane"}
	}
	return nil
}

// Profile is the name of a scenario (or preset) in a flavour: the skaffold profile and the
// deploy/scenarios directory. Sidecar keeps the bare name; the others are prefixed:
// gateway-api-weighted-split, ambient-default.
func Profile(f Flavour, name string) string {
	if f == Sidecar {
		return name
	}
	return string(f) + "-" + name
}

// ParseProfile splits a profile (Profile) into its flavour and scenario or preset name.
func ParseProfile(profile string) (Flavour, string, error) {
	f, name := Sidecar, profile
	for _, g := range Flavours[1:] {
		if n, ok := strings.CutPrefix(profile, string(g)+"-"); ok {
			f, name = g, n
		}
	}
	if !slices.Contains(Presets, name) && !slices.Contains(Scenarios, name) {
		return "", "", fmt.Errorf("unknown profile %q", profile)
	}
	return f, name, nil
}

// Profiles lists every profile: for each flavour its presets, then its scenarios.
func Profiles() []string {
	var out []string
	for _, f := range Flavours {
		for _, n := range append(slices.Clone(Presets), Scenarios...) {
			out = append(out, Profile(f, n))
		}
	}
	return out
}

// Scenario is the sidecar flavour's composition of a scenario (ScenarioIn(Sidecar, name)).
func Scenario(name string) Composition { return ScenarioIn(Sidecar, name) }

// ScenarioIn is the composition deployed for a scenario on kind (deploy/scenarios/<profile>):
// the base and the flavour's Istio base, the flavour's leading components, the canary with the
// PostgreSQL that v1 and v2 of user-service share (after the canary, so its DATABASE_URL patch
// reaches user-service-v2), the scenario component, and the kind component last so its image tag
// and pull policy reach the v2 Deployments too. "default" (v1 only, user-service in memory) and
// "canary" are the presets.
func ScenarioIn(f Flavour, name string) Composition {
	c := Composition{Resources: []string{"deploy/base", f.base()}}
	c.Components = append(c.Components, f.leading()...)
	if name != "default" {
		c.Components = append(c.Components, CanaryComponents...)
	}
	if name != "default" && name != "canary" {
		c.Components = append(c.Components, f.component(name))
	}
	c.Components = append(c.Components, "deploy/components/kind")
	return c
}

// CanaryComponents are the components that make v1 and v2 run side by side, in order.
var CanaryComponents = []string{"deploy/components/canary", "deploy/components/postgres"}

// Alone is a sidecar scenario component applied without the canary (AloneIn(Sidecar, name)).
func Alone(name string) Composition { return AloneIn(Sidecar, name) }

// AloneIn is a scenario component applied without the canary: the kind overlay plus the
// flavour's Istio base.
func AloneIn(f Flavour, name string) Composition {
	return Composition{
		Resources:  []string{"deploy/overlays/kind", f.base()},
		Components: append(f.leading(), f.component(name)),
	}
}

// Kustomization is the kustomization.yaml text of c as seen from dir (relative to the root).
func (c Composition) Kustomization(dir, comment string) string {
	var b strings.Builder
	if comment != "" {
		fmt.Fprintf(&b, "# %s\n", comment)
	}
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, r := range c.Resources {
		fmt.Fprintf(&b, "  - %s\n", rel(dir, r))
	}
	if len(c.Components) > 0 {
		b.WriteString("components:\n")
		for _, r := range c.Components {
			fmt.Fprintf(&b, "  - %s\n", rel(dir, r))
		}
	}
	return b.String()
}

func rel(from, to string) string {
	r, err := filepath.Rel(from, to)
	if err != nil {
		panic(err) // both are clean relative paths under the root
	}
	return filepath.ToSlash(r)
}

// ScenarioDir is where the committed kustomization of a profile (Profile) lives.
func ScenarioDir(profile string) string { return "deploy/scenarios/" + profile }

// ScenarioFile is the committed content of deploy/scenarios/<profile>/kustomization.yaml.
func ScenarioFile(f Flavour, name string) string {
	p := Profile(f, name)
	return ScenarioIn(f, name).Kustomization(ScenarioDir(p),
		fmt.Sprintf("Generated by `make scenarios` (verify/cmd/render); verify checks it is current. Scenario %q, flavour %s, on kind.", name, f))
}

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
func (t *Tree) Render(c Composition) ([]byte, error) {
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
