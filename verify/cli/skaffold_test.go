package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/verify/manifests"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// skaffoldModuleDir is the skaffold module pinned in build/tools/skaffold, from the module cache
// (`go mod download` fetches it if needed). Its docs-v2 folder ships the JSON schemas.
func skaffoldModuleDir(t testing.TB) string {
	t.Helper()
	toolsDir := filepath.Join(repoRoot(t), "build", "tools", "skaffold")
	cmd := exec.Command("go", "list", "-m", "-json", "github.com/GoogleContainerTools/skaffold/v2")
	cmd.Dir = toolsDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m skaffold: %v", err)
	}
	var m struct{ Version, Dir string }
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.Version != "v2.16.1" {
		t.Fatalf("build/tools/skaffold pins skaffold %s, want v2.16.1", m.Version)
	}
	if m.Dir == "" {
		dl := exec.Command("go", "mod", "download", "-json", "github.com/GoogleContainerTools/skaffold/v2@"+m.Version)
		dl.Dir = toolsDir
		dl.Env = cmd.Env
		out, err := dl.Output()
		if err != nil {
			t.Fatalf("go mod download skaffold: %v", err)
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
	}
	return m.Dir
}

// skaffoldSchema compiles the JSON schema of the skaffold.yaml apiVersion, and checks that
// apiVersion is the newest one the pinned skaffold knows.
func skaffoldSchema(t testing.TB, config []byte) *jsonschema.Schema {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
	}
	if err := yaml.Unmarshal(config, &head); err != nil {
		t.Fatal(err)
	}
	dir := skaffoldModuleDir(t)
	latest, err := os.ReadFile(filepath.Join(dir, "pkg", "skaffold", "schema", "latest", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`const Version string = "([^"]+)"`).FindSubmatch(latest)
	if m == nil || string(m[1]) != head.APIVersion {
		t.Errorf("skaffold.yaml apiVersion %q, the pinned skaffold's latest is %q", head.APIVersion, m)
	}
	version := strings.TrimPrefix(head.APIVersion, "skaffold/")
	schemaFile := filepath.Join(dir, "docs-v2", "content", "en", "schemas", version+".json")
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaFile, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateSkaffold(t testing.TB, s *jsonschema.Schema, config []byte) error {
	t.Helper()
	js, err := yaml.YAMLToJSON(config)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

func readSkaffold(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// skaffold.yaml validates against the schema shipped in the pinned skaffold module, and
// the same schema rejects typos (its objects do not allow additional properties).
func TestSkaffoldSchema(t *testing.T) {
	t.Parallel()
	config := readSkaffold(t)
	s := skaffoldSchema(t, config)
	if err := validateSkaffold(t, s, config); err != nil {
		t.Fatalf("skaffold.yaml: %v", err)
	}
	broken := map[string][2]string{
		"typo in a field":    {"  kustomize:\n", "  kustomise:\n"},
		"profile name typo":  {"  - name: canary\n", "  - nam: canary\n"},
		"artifact as string": {"    - image: meshdemo/client\n", "    - image: 42\n"},
	}
	for name, edit := range broken {
		if !bytes.Contains(config, []byte(edit[0])) {
			t.Errorf("%s: fixture no longer applies", name)
			continue
		}
		if err := validateSkaffold(t, s, bytes.Replace(config, []byte(edit[0]), []byte(edit[1]), 1)); err == nil {
			t.Errorf("%s: accepted by the schema", name)
		}
	}
}

type skaffoldConfig struct {
	Build struct {
		Artifacts []struct {
			Image  string `json:"image"`
			Docker struct {
				Dockerfile string            `json:"dockerfile"`
				BuildArgs  map[string]string `json:"buildArgs"`
			} `json:"docker"`
		} `json:"artifacts"`
	} `json:"build"`
	Profiles []struct {
		Name string `json:"name"`
	} `json:"profiles"`
}

// One profile per preset and scenario; four artifacts built from build/Dockerfile.
func TestSkaffoldProfilesAndArtifacts(t *testing.T) {
	t.Parallel()
	var c skaffoldConfig
	if err := yaml.Unmarshal(readSkaffold(t), &c); err != nil {
		t.Fatal(err)
	}
	var profiles []string
	for _, p := range c.Profiles {
		profiles = append(profiles, p.Name)
	}
	want := append([]string{"canary"}, manifests.Scenarios...)
	if !slices.Equal(profiles, want) {
		t.Errorf("profiles %v, want %v", profiles, want)
	}
	var images []string
	for _, a := range c.Build.Artifacts {
		images = append(images, a.Image)
		w := strings.TrimPrefix(a.Image, "meshdemo/")
		if a.Docker.Dockerfile != "build/Dockerfile" || a.Docker.BuildArgs["WORKLOAD"] != w {
			t.Errorf("artifact %s: dockerfile %q WORKLOAD %q", a.Image, a.Docker.Dockerfile, a.Docker.BuildArgs["WORKLOAD"])
		}
	}
	if !slices.Equal(images, []string{"meshdemo/client", "meshdemo/server1", "meshdemo/server2", "meshdemo/user-service"}) {
		t.Errorf("artifacts %v", images)
	}
}

// skaffoldRender runs `skaffold render --offline=true --digest-source=none` (no cluster, no
// build) in dir; kustomize comes from the pinned tools module.
func skaffoldRender(t testing.TB, dir string, args ...string) result {
	t.Helper()
	kustomize := tool(t, "KUSTOMIZE", "kustomize")
	env := []string{
		"PATH=" + filepath.Dir(kustomize) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"SKAFFOLD_UPDATE_CHECK=false", "SKAFFOLD_COLLECT_METRICS=false",
		"HOME=" + t.TempDir(), // skaffold writes its global config there
	}
	return run(t, dir, env, tool(t, "SKAFFOLD", "skaffold"),
		append([]string{"render", "--offline=true", "--digest-source=none"}, args...)...)
}

func objectIDs(t testing.TB, stream []byte) []string {
	t.Helper()
	objs, err := manifests.Decode(stream)
	if err != nil {
		t.Fatalf("strict decode of skaffold's output: %v", err)
	}
	var ids []string
	for _, o := range objs {
		ids = append(ids, o.ID())
	}
	slices.Sort(ids)
	return ids
}

func objectsByID(t testing.TB, stream []byte) map[string]map[string]any {
	t.Helper()
	objs, err := manifests.Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, o := range objs {
		var m map[string]any
		if err := yaml.Unmarshal(o.YAML, &m); err != nil {
			t.Fatal(err)
		}
		out[o.ID()] = m
	}
	return out
}

// Every profile renders through skaffold to the same objects the verify tests check.
func TestSkaffoldRenderEveryProfile(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	for _, name := range append(slices.Clone(manifests.Presets), manifests.Scenarios...) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if name != "default" {
				args = []string{"-p", name}
			}
			// -o: skaffold also prints notices on stdout.
			outFile := filepath.Join(t.TempDir(), "rendered.yaml")
			r := skaffoldRender(t, root, append(args, "-o", outFile)...)
			if r.err != nil {
				t.Fatalf("skaffold render %v: %v\n%s", args, r.err, r.stderr)
			}
			rendered, err := os.ReadFile(outFile)
			if err != nil {
				t.Fatal(err)
			}
			want, err := sharedTree(t).Build(manifests.ScenarioDir(name))
			if err != nil {
				t.Fatal(err)
			}
			got, exp := objectIDs(t, rendered), objectIDs(t, want)
			if !slices.Equal(got, exp) {
				t.Fatalf("skaffold rendered %v\nkustomize rendered %v", got, exp)
			}
			// Not only the same objects: the same content (skaffold adds nothing offline with
			// --digest-source=none, so the images stay meshdemo/<workload>:dev).
			gotObjs, expObjs := objectsByID(t, rendered), objectsByID(t, want)
			for id, o := range expObjs {
				if !reflect.DeepEqual(gotObjs[id], o) {
					t.Errorf("%s differs between skaffold and kustomize:\nskaffold: %v\nkustomize: %v", id, gotObjs[id], o)
				}
			}
		})
	}
}

// A profile pointing at a scenario that does not exist fails to render, and so does an unknown
// profile name.
func TestSkaffoldRenderFailsOnBrokenProfiles(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"deploy", "istio", "build"} {
		if err := os.Symlink(filepath.Join(root, d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	config := readSkaffold(t)
	old := []byte("value: deploy/scenarios/retries")
	if !bytes.Contains(config, old) {
		t.Fatal("fixture no longer applies")
	}
	config = bytes.Replace(config, old, []byte("value: deploy/scenarios/no-such-scenario"), 1)
	if err := os.WriteFile(filepath.Join(dir, "skaffold.yaml"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		profile, want string
	}{
		{"retries", "no-such-scenario"},
		{"no-such-profile", "no-such-profile"},
	} {
		r := skaffoldRender(t, dir, "-p", c.profile)
		if r.err == nil || !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("profile %s: want a failure naming %q, got %v\n%s", c.profile, c.want, r.err, r.stderr)
		}
	}
	// The control: the same copy renders a healthy profile.
	if r := skaffoldRender(t, dir, "-p", "authz"); r.err != nil {
		t.Errorf("control profile authz: %v\n%s", r.err, r.stderr)
	}
}
