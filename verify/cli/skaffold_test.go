package cli

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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

// looseObjects decodes a rendered stream into objects by identity (apiVersion, kind,
// namespace, name) without strict typing: this test compares skaffold's render with
// kustomize's, whatever kinds a flavour uses (the verify/manifests tests check the types).
func looseObjects(t testing.TB, stream []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	r := utilyaml.NewYAMLReader(bufioReader(stream))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		if m == nil {
			continue
		}
		meta, _ := m["metadata"].(map[string]any)
		id := fmt.Sprintf("%v/%v %v/%v", m["apiVersion"], m["kind"], meta["namespace"], meta["name"])
		if _, dup := out[id]; dup || meta["name"] == nil || m["kind"] == nil {
			t.Fatalf("object %s: unnamed or twice in the stream", id)
		}
		out[id] = m
	}
}

func sortedKeys(m map[string]map[string]any) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.Sort(keys)
	return keys
}

// Every profile of every flavour renders through skaffold to the same objects, with the same
// content, as kustomize's build of deploy/scenarios/<profile>. The renders run two at a time
// (heavy), about half a second each.
func TestSkaffoldRenderEveryProfile(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	profiles := matrix.Profiles()
	if len(profiles) != len(matrix.Flavours())*(len(matrix.PresetNames())+len(matrix.ScenarioNames())) {
		t.Fatalf("%d profiles", len(profiles))
	}
	for _, name := range profiles {
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
			want, err := sharedTree(t).Build(matrix.ScenarioDir(name))
			if err != nil {
				t.Fatal(err)
			}
			gotObjs, expObjs := looseObjects(t, rendered), looseObjects(t, want)
			if got, exp := sortedKeys(gotObjs), sortedKeys(expObjs); !slices.Equal(got, exp) || len(exp) == 0 {
				t.Fatalf("skaffold rendered %v\nkustomize rendered %v", got, exp)
			}
			// Not only the same objects: the same content (skaffold adds nothing offline with
			// --digest-source=none, so the images stay meshdemo/<workload>:dev).
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
	for profile, dir := range map[string]string{"retries": "no-such-scenario", "ambient-retries": "ambient-no-such-scenario"} {
		old := []byte("value: deploy/scenarios/" + profile + "\n")
		if !bytes.Contains(config, old) {
			t.Fatalf("fixture %s no longer applies", profile)
		}
		config = bytes.Replace(config, old, []byte("value: deploy/scenarios/"+dir+"\n"), 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "skaffold.yaml"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		profile, want string
	}{
		{"retries", "no-such-scenario"},
		{"ambient-retries", "ambient-no-such-scenario"},
		{"no-such-profile", "no-such-profile"},
		{"gateway-api-no-such", "gateway-api-no-such"},
	} {
		r := skaffoldRender(t, dir, "-p", c.profile)
		if r.err == nil || !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("profile %s: want a failure naming %q, got %v\n%s", c.profile, c.want, r.err, r.stderr)
		}
	}
	// The control: the same copy renders healthy profiles.
	for _, p := range []string{"authz", "gateway-api-authz"} {
		if r := skaffoldRender(t, dir, "-p", p); r.err != nil {
			t.Errorf("control profile %s: %v\n%s", p, r.err, r.stderr)
		}
	}
}
