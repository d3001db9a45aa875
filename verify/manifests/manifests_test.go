package manifests

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "base", "kustomization.yaml")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// loadTree is a fresh copy of the repository, for a test that edits it, with the release
// component of testRelease (so that "bundle:" targets render).
func loadTree(t testing.TB) *Tree {
	t.Helper()
	tree, err := LoadTree(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.UseRelease(testRelease()); err != nil {
		t.Fatal(err)
	}
	return tree
}

var (
	sharedOnce sync.Once
	shared     *Tree
	sharedErr  error
)

// sharedTree is one copy of the repository that no test edits: the tests that only render share
// it, and with it the renders it keeps.
func sharedTree(t testing.TB) *Tree {
	t.Helper()
	sharedOnce.Do(func() {
		if shared, sharedErr = LoadTree(repoRoot(t)); sharedErr == nil {
			sharedErr = shared.UseRelease(testRelease())
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// render builds a named render target: a profile (a deploy/scenarios name: weighted-split,
// gateway-api-canary), "alone:<profile>" (the profile's scenario component without the canary),
// "pilot:<profile>" (the form verify/pilot renders: deploy/base and the flavour's base with the
// canary, without the kind component), "bundle:<profile>" (the profile's release bundle for
// testRelease) or "dir:<path>".
func render(t testing.TB, tree *Tree, target string) ([]byte, error) {
	t.Helper()
	kind, name, _ := strings.Cut(target, ":")
	switch kind {
	case "alone", "pilot", "bundle":
		f, scenario, err := matrix.ParseProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case "alone":
			return tree.Render(matrix.AloneIn(f, scenario))
		case "bundle":
			return tree.Render(matrix.ReleaseIn(f, scenario))
		}
		return tree.Render(matrix.ClusterIn(f, scenario))
	case "dir":
		return tree.Build(name)
	default:
		return tree.Build(matrix.ScenarioDir(target))
	}
}

var (
	nodePortsOnce sync.Once
	nodePorts     []int32
	nodePortsErr  error
)

// options are the rule options of a render target: its flavour, and the node ports
// build/kind/cluster.yaml publishes.
func options(t testing.TB, target string) Options {
	t.Helper()
	nodePortsOnce.Do(func() { nodePorts, nodePortsErr = KindPublishedNodePorts(repoRoot(t)) })
	if nodePortsErr != nil {
		t.Fatal(nodePortsErr)
	}
	kind, profile, ok := strings.Cut(target, ":")
	if !ok {
		profile = target
	}
	f, _, err := matrix.ParseProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Flavour: f, PublishedNodePorts: nodePorts, WithoutCanary: kind == "alone"}
	switch kind {
	case "pilot":
		o.PublishedNodePorts, o.AnyCluster = nil, true
	case "bundle":
		r := testRelease()
		o.PublishedNodePorts, o.Release = nil, &r
	}
	return o
}

// targets is every render the issue asks for: each overlay, and in every flavour each preset and
// each scenario alone, with the canary (deploy/scenarios) and in the pilot engineer's form, and
// every profile's release bundle.
func targets() []string {
	out := []string{"dir:deploy/base", "dir:deploy/overlays/kind"}
	for _, p := range matrix.Profiles() {
		out = append(out, "bundle:"+p)
	}
	for _, f := range matrix.Flavours() {
		for _, p := range matrix.PresetNames() {
			out = append(out, f.Profile(p))
		}
		for _, s := range matrix.ScenarioNames() {
			p := f.Profile(s)
			out = append(out, p, "alone:"+p, "pilot:"+p)
		}
	}
	return out
}

// Every flavour has a component folder for each declared scenario and none other: an
// undeclared folder would never be rendered, simulated or deployed, and a missing one is named
// here rather than by a kustomize error. Each scenario also has its section in the components
// README.
func TestEveryComponentIsDeclared(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	want := slices.Sorted(slices.Values(matrix.ScenarioNames()))
	for _, f := range matrix.Flavours() {
		entries, err := os.ReadDir(filepath.Join(root, f.ComponentsDir()))
		if err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, e.Name())
			}
		}
		if !slices.Equal(dirs, want) {
			t.Errorf("%s has %v, matrix.ScenarioNames() lists %v", f.ComponentsDir(), dirs, want)
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "istio", "sidecar", "components", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range matrix.ScenarioNames() {
		if !bytes.Contains(readme, []byte("\n### "+s+"\n")) {
			t.Errorf("istio/sidecar/components/README.md has no section %q", "### "+s)
		}
	}
}

// The committed deploy/scenarios/*/kustomization.yaml are what skaffold deploys; they must be
// exactly the generated compositions (regenerate with `make scenarios`).
func TestScenarioFilesAreCurrent(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	entries, err := os.ReadDir(filepath.Join(root, "deploy", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		dirs = append(dirs, e.Name())
	}
	if want := slices.Sorted(slices.Values(matrix.Profiles())); !slices.Equal(dirs, want) {
		t.Errorf("deploy/scenarios has %v, want %v", dirs, want)
	}
	for _, f := range matrix.Flavours() {
		for _, n := range append(slices.Clone(matrix.PresetNames()), matrix.ScenarioNames()...) {
			dir := matrix.ScenarioDir(f.Profile(n))
			got, err := os.ReadFile(filepath.Join(root, dir, "kustomization.yaml"))
			if err != nil {
				t.Error(err)
				continue
			}
			if want := matrix.ScenarioFile(f, n); string(got) != want {
				t.Errorf("%s/kustomization.yaml is stale; run `make scenarios`.\ngot:\n%s\nwant:\n%s", dir, got, want)
			}
		}
	}
}

// skaffold.yaml's artifacts and profiles are generated from the declaration too.
func TestSkaffoldFileIsCurrent(t *testing.T) {
	t.Parallel()
	got, err := os.ReadFile(filepath.Join(repoRoot(t), "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := SkaffoldFile(); string(got) != want {
		t.Errorf("skaffold.yaml is stale; run `make scenarios`.\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func TestEveryRenderDecodesStrictlyAndPassesTheRules(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	for _, target := range targets() {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			out, err := render(t, tree, target)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(out)
			if err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			if strings.HasPrefix(target, "dir:deploy") {
				err = CheckKubernetes(objs)
			} else {
				err = Check(objs, options(t, target))
			}
			if err != nil {
				t.Fatalf("rules:\n%v", err)
			}
		})
	}
}

// What the canary and kind components must contribute, seen in the rendered objects of every flavour.
func TestCanaryAndKindReachEveryDeployment(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	for _, f := range matrix.Flavours() {
		t.Run(string(f), func(t *testing.T) { canaryAndKindReachEveryDeployment(t, tree, f) })
	}
}

func canaryAndKindReachEveryDeployment(t *testing.T, tree *Tree, f matrix.Flavour) {
	out, err := tree.Build(matrix.ScenarioDir(f.Profile("canary")))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		d, ok := o.Typed.(*appsv1.Deployment)
		if !ok {
			continue
		}
		got = append(got, d.Name)
		c := d.Spec.Template.Spec.Containers[0]
		if !strings.HasSuffix(c.Image, ":dev") || c.ImagePullPolicy != "Never" {
			t.Errorf("%s: image %q pull policy %q, want meshdemo/<workload>:dev and Never", o.ID(), c.Image, c.ImagePullPolicy)
		}
	}
	want := []string{"client-v1", "server1-v1", "server1-v2", "server2-v1", "server2-v2", "user-service-v1", "user-service-v2"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Deployments %v, want %v", got, want)
	}
}

// Every scenario component changes the render, in every flavour (compared with the flavour's
// canary preset).
func TestEveryScenarioChangesSomething(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	for _, f := range matrix.Flavours() {
		base, err := tree.Build(matrix.ScenarioDir(f.Profile("canary")))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range matrix.ScenarioNames() {
			out, err := tree.Build(matrix.ScenarioDir(f.Profile(s)))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(out, base) {
				t.Errorf("scenario %s renders the same as %s", f.Profile(s), f.Profile("canary"))
			}
		}
	}
}

type brokenCase struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Old     string `json:"old"`
	New     string `json:"new"`
	Overlay string `json:"overlay"`
	Render  string `json:"render"`
	Want    string `json:"want"`
}

// Each deliberately broken variant must make decoding or a rule fail with the expected message.
func TestBrokenFixturesFail(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/broken.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []brokenCase
	if err := yaml.UnmarshalStrict(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d broken cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			tree := loadTree(t)
			if c.File != "" {
				orig, err := tree.Read(c.File)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(orig, []byte(c.Old)) {
					t.Fatalf("%s does not contain %q: the fixture no longer applies", c.File, c.Old)
				}
				if err := tree.Write(c.File, bytes.ReplaceAll(orig, []byte(c.Old), []byte(c.New))); err != nil {
					t.Fatal(err)
				}
			}
			if c.Overlay != "" {
				overlay(t, tree, filepath.Join("testdata", "broken", c.Overlay))
			}
			out, err := render(t, tree, c.Render)
			if err == nil {
				objs, derr := Decode(out)
				err = derr
				if derr == nil {
					err = Check(objs, options(t, c.Render))
				}
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", c.Want)
			}
			if !strings.Contains(err.Error(), c.Want) {
				t.Fatalf("error does not contain %q:\n%v", c.Want, err)
			}
		})
	}
}

func overlay(t *testing.T, tree *Tree, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return tree.Write(filepath.ToSlash(rel), data)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The database the issue asks for: with the canary (every deploy/scenarios entry but default),
// one PostgreSQL StatefulSet behind a TCP Service, and every version of user-service pointed at
// it; the default preset keeps user-service in memory; the component alone (base, no canary)
// still reaches v1, so other compositions (the later Istio flavours) can reuse it.
func TestPostgresSharedByEveryUserService(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	const url = "postgres://meshdemo:$(DATABASE_PASSWORD)@postgres.meshdemo.svc.cluster.local:5432/meshdemo?sslmode=disable"
	for _, tc := range []struct {
		name     string
		comp     matrix.Composition
		postgres bool
		users    []string // user-service Deployments expected, all with DATABASE_URL when postgres
	}{
		{"canary", matrix.ScenarioIn(matrix.Sidecar, "canary"), true, []string{"user-service-v1", "user-service-v2"}},
		{"authz", matrix.ScenarioIn(matrix.Sidecar, "authz"), true, []string{"user-service-v1", "user-service-v2"}},
		{"default", matrix.ScenarioIn(matrix.Sidecar, "default"), false, []string{"user-service-v1"}},
		{"component-without-canary", matrix.Composition{Resources: []string{"deploy/base"}, Components: []string{"deploy/components/postgres"}}, true, []string{"user-service-v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := tree.Render(tc.comp)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			var users []string
			var sts *appsv1.StatefulSet
			var svc *corev1.Service
			for _, o := range objs {
				switch x := o.Typed.(type) {
				case *appsv1.StatefulSet:
					sts = x
				case *corev1.Service:
					if x.Name == "postgres" {
						svc = x
					}
				case *appsv1.Deployment:
					if x.Spec.Template.Labels["app"] != "user-service" {
						continue
					}
					users = append(users, x.Name)
					got := ""
					for _, e := range x.Spec.Template.Spec.Containers[0].Env {
						if e.Name == "DATABASE_URL" {
							got = e.Value
						}
					}
					if tc.postgres && got != url {
						t.Errorf("%s: DATABASE_URL %q, want %q", x.Name, got, url)
					}
					if !tc.postgres && got != "" {
						t.Errorf("%s: DATABASE_URL %q, want none (memory store)", x.Name, got)
					}
				}
			}
			slices.Sort(users)
			if !slices.Equal(users, tc.users) {
				t.Errorf("user-service Deployments %v, want %v", users, tc.users)
			}
			if !tc.postgres {
				if sts != nil || svc != nil {
					t.Errorf("PostgreSQL rendered without the canary")
				}
				return
			}
			if sts == nil || svc == nil {
				t.Fatalf("StatefulSet %v, Service %v: want both", sts != nil, svc != nil)
			}
			c := sts.Spec.Template.Spec.Containers[0]
			// The kind component pins meshdemo's images to :dev with pull policy Never; PostgreSQL
			// must keep its own tag and be pulled by the node.
			if c.Image != "postgres:17-alpine" || c.ImagePullPolicy == corev1.PullNever {
				t.Errorf("postgres image %q pull policy %q", c.Image, c.ImagePullPolicy)
			}
			p := svc.Spec.Ports
			if len(p) != 1 || p[0].Name != "tcp-postgres" || p[0].Port != 5432 || p[0].AppProtocol == nil || *p[0].AppProtocol != "tcp" {
				t.Errorf("Service postgres ports %+v, want tcp-postgres 5432 appProtocol tcp", p)
			}
			if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Labels[partOf] != "meshdemo" {
				t.Errorf("volume claim templates %+v, want one labelled %s=meshdemo", sts.Spec.VolumeClaimTemplates, partOf)
			}
		})
	}
}
