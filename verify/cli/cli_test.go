// Package cli runs the pinned command-line tools (istioctl, skaffold) over the rendered
// manifests, the way a user or CI would, and proves with broken fixtures that each run can fail.
package cli

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/verify/manifests"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "build", "istio-version")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// tool is the absolute path of a pinned CLI: $ENV (set by `make test-verify`, which builds them
// first) or ./bin/<name>. Missing is a failure, not a skip: the validation is the point.
func tool(t testing.TB, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = filepath.Join(repoRoot(t), "bin", name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found (%v): run `make test-verify`, which builds it with `make tools`", name, err)
	}
	return p
}

// heavy limits concurrent CLI runs: istioctl is a 200 MB binary and CI has two cores.
var heavy = make(chan struct{}, 2)

type result struct {
	stdout, stderr string
	err            error
}

func run(t testing.TB, dir string, env []string, name string, args ...string) result {
	t.Helper()
	heavy <- struct{}{}
	defer func() { <-heavy }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errOut.String(), err: err}
}

var (
	treeOnce sync.Once
	tree     *manifests.Tree
	treeErr  error
)

// sharedTree is one copy of the repository that no test edits, with the release component of
// testRelease written in (so that it renders the release bundles too).
func sharedTree(t testing.TB) *manifests.Tree {
	t.Helper()
	treeOnce.Do(func() {
		if tree, treeErr = manifests.LoadTree(repoRoot(t)); treeErr == nil {
			treeErr = tree.UseRelease(testRelease())
		}
	})
	if treeErr != nil {
		t.Fatal(treeErr)
	}
	return tree
}

// testRelease is a fabricated release (the bundle render's input, images.json): every image of
// matrix.Images under a registry, each with a digest made here.
func testRelease() matrix.Release {
	r := matrix.Release{Registry: "registry.test:5000/meshdemo", Version: "v0.0.0-test", Revision: "0123abc", Created: "2026-12-06T00:00:00Z"}
	for _, im := range matrix.Images() {
		sum := sha256.Sum256([]byte("index of " + im.Name))
		d := "sha256:" + hex.EncodeToString(sum[:])
		r.Images = append(r.Images, matrix.ReleasedImage{Name: im.Name, Repository: r.Registry + "/" + im.Name, Digest: d,
			Platforms: []matrix.ReleasedPlatform{{Platform: "linux/amd64", Digest: d, Size: 1}}})
	}
	return r
}

// bundle renders a profile's release bundle for testRelease, checked as cmd/render -release
// checks it (manifests.Tree.Bundle: strict decode and the rules).
func bundle(tr *manifests.Tree, profile string) ([]byte, error) {
	return tr.Bundle(testRelease(), profile)
}

// renders is every rendered scenario the analyzers see, by name: every profile of every flavour
// (the presets and each scenario with the canary, deploy/scenarios), its release bundle
// ("bundle-<profile>", what a user applies on any cluster), and each scenario component alone
// ("alone-<profile>"). Each call builds one (the shared tree builds in parallel and keeps what it
// built).
func renders() map[string]func(*manifests.Tree) ([]byte, error) {
	out := map[string]func(*manifests.Tree) ([]byte, error){}
	for _, p := range matrix.Profiles() {
		out[p] = func(tr *manifests.Tree) ([]byte, error) { return tr.Build(matrix.ScenarioDir(p)) }
		out["bundle-"+p] = func(tr *manifests.Tree) ([]byte, error) { return bundle(tr, p) }
	}
	for _, f := range matrix.Flavours() {
		for _, n := range matrix.ScenarioNames() {
			out["alone-"+f.Profile(n)] = func(tr *manifests.Tree) ([]byte, error) { return tr.Render(matrix.AloneIn(f, n)) }
		}
	}
	return out
}

type analyzerMessage struct {
	Code    string `json:"code"`
	Level   string `json:"level"`
	Message string `json:"message"`
	Origin  string `json:"origin"`
}

// analyze runs `istioctl analyze --use-kube=false -A -o json` on one file. -A matters: without
// it only the default namespace is analyzed and broken config elsewhere passes.
func analyze(t testing.TB, file string) ([]analyzerMessage, result) {
	t.Helper()
	r := run(t, filepath.Dir(file), nil, tool(t, "ISTIOCTL", "istioctl"), "analyze", "--use-kube=false", "-A", "-o", "json", file)
	var msgs []analyzerMessage
	if err := json.Unmarshal([]byte(r.stdout), &msgs); err != nil {
		t.Fatalf("istioctl analyze printed no JSON (%v):\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return msgs, r
}

func validate(t testing.TB, file string) result {
	t.Helper()
	return run(t, filepath.Dir(file), nil, tool(t, "ISTIOCTL", "istioctl"), "validate", "-f", file)
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// envoyFilterWarning is what Istio says of every EnvoyFilter, whatever it holds (IST0133 from
// analyze, a warning from validate). The rate-limit scenario needs one, as no other Istio API
// configures Envoy's local rate limit; this is the only message tolerated, and only for an
// EnvoyFilter.
const envoyFilterWarning = "EnvoyFilter exposes internal implementation details that may change at any time."

// notEnvoyFilterWarning drops the one tolerated message from analyze's output.
func notEnvoyFilterWarning(msgs []analyzerMessage) []analyzerMessage {
	var out []analyzerMessage
	for _, m := range msgs {
		if m.Code == "IST0133" && m.Level == "Warning" && strings.HasPrefix(m.Origin, "EnvoyFilter ") && strings.Contains(m.Message, envoyFilterWarning) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// validateClean: `istioctl validate` found the file valid, or warned only that EnvoyFilters are EnvoyFilters.
func validateClean(out string) bool {
	if strings.Contains(out, "is valid") {
		return true
	}
	_, warnings, ok := strings.Cut(out, "has warnings:")
	if !ok {
		return false
	}
	n := 0
	for _, line := range strings.Split(warnings, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "* EnvoyFilter/") || !strings.Contains(line, envoyFilterWarning) {
			return false
		}
		n++
	}
	return n > 0
}

// Istio's analyzers and validation report nothing at all (no error, warning or info) on any
// rendered scenario, except the warning every EnvoyFilter gets.
func TestIstioctlAnalyzeAndValidateEveryScenario(t *testing.T) {
	t.Parallel()
	for name, build := range renders() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := build(sharedTree(t))
			if err != nil {
				t.Fatal(err)
			}
			file := writeTemp(t, name, data)
			msgs, r := analyze(t, file)
			if msgs = notEnvoyFilterWarning(msgs); r.err != nil || len(msgs) != 0 {
				t.Errorf("istioctl analyze: %v, messages %+v\n%s", r.err, msgs, r.stderr)
			}
			v := validate(t, file)
			if v.err != nil || !validateClean(v.stdout+v.stderr) {
				t.Errorf("istioctl validate: %v\n%s%s", v.err, v.stdout, v.stderr)
			}
		})
	}
}

type cliCase struct {
	Name   string `json:"name"`
	Render string `json:"render"`
	Old    string `json:"old"`
	New    string `json:"new"`
	Tool   string `json:"tool"`
	Want   string `json:"want"`
}

// Deliberately broken rendered scenarios (testdata/istioctl-broken.yaml) that bypass our own
// rules and go straight to istioctl: analyze or validate must reject each one.
func TestIstioctlRejectsBrokenScenarios(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/istioctl-broken.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []cliCase
	if err := yaml.UnmarshalStrict(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			orig, err := sharedTree(t).Build(matrix.ScenarioDir(c.Render))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(orig, []byte(c.Old)) {
				t.Fatalf("rendered %s does not contain %q: the fixture no longer applies", c.Render, c.Old)
			}
			file := writeTemp(t, c.Name, bytes.ReplaceAll(orig, []byte(c.Old), []byte(c.New)))
			switch c.Tool {
			case "analyze":
				msgs, r := analyze(t, file)
				found := false
				for _, m := range msgs {
					found = found || strings.Contains(m.Code+" "+m.Level+" "+m.Message, c.Want)
				}
				if len(msgs) == 0 || !found {
					t.Fatalf("istioctl analyze: want a message containing %q, got %+v (err %v)", c.Want, msgs, r.err)
				}
			case "validate":
				r := validate(t, file)
				if r.err == nil || !strings.Contains(r.stdout+r.stderr, c.Want) {
					t.Fatalf("istioctl validate: want failure containing %q, got err %v\n%s%s", c.Want, r.err, r.stdout, r.stderr)
				}
			default:
				t.Fatalf("unknown tool %q", c.Tool)
			}
		})
	}
}

// The tolerance for EnvoyFilters is narrow: a real mistake in one (a misspelt Envoy field, which
// istioctl reports only as a warning) still fails both analyze and validate in the scenario test.
func TestEnvoyFilterToleranceIsNarrow(t *testing.T) {
	t.Parallel()
	orig, err := sharedTree(t).Build(matrix.ScenarioDir("rate-limit"))
	if err != nil {
		t.Fatal(err)
	}
	file := writeTemp(t, "rate-limit-typo", bytes.ReplaceAll(orig, []byte("tokens_per_fill: 10"), []byte("token_per_fill: 10")))
	clean, _ := analyze(t, writeTemp(t, "rate-limit", orig))
	if len(clean) == 0 || len(notEnvoyFilterWarning(clean)) != 0 {
		t.Fatalf("the correct EnvoyFilter should draw exactly the tolerated warning, got %+v", clean)
	}
	msgs, _ := analyze(t, file)
	if len(notEnvoyFilterWarning(msgs)) == 0 {
		t.Errorf("istioctl analyze: the misspelt field is tolerated: %+v", msgs)
	}
	v := validate(t, file)
	if validateClean(v.stdout + v.stderr) {
		t.Errorf("istioctl validate: the misspelt field is tolerated:\n%s%s", v.stdout, v.stderr)
	}
}

// What istioctl analyze does not do, pinned so that the docs' claim stays true: offline (files
// only) it checks no Gateway API object. Its Gateway API analyzers read the status istiod writes
// in a cluster (conditions.ConditionAnalyzer) or need Pods and Services, which it never reads from
// files (pkg/config/analysis/legacy/util/kuberesource: Service, Namespace, Node, Pod and Secret
// are excluded from file sources, so those analyzers are skipped), and the Gateway API schemas
// validate nothing (validation.EmptyValidate). An HTTPRoute to a missing Service, a GRPCRoute to
// an HTTP port and a listener that does not admit its route all pass analyze and validate; the
// rules of verify/manifests catch each. If this test fails, istioctl learned to check one of them:
// keep the rule, and update the docs (offline verification) that say analyze cannot.
func TestIstioctlAnalyzeLeavesGatewayAPIReferencesToTheRules(t *testing.T) {
	t.Parallel()
	ports, err := manifests.KindPublishedNodePorts(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, profile, old, new, rule string
	}{
		{"backend Service missing", "gateway-api-canary",
			"    - name: server2-v1\n      port: 8080\n", "    - name: server2-v3\n      port: 8080\n",
			"Service meshdemo/server2-v3 is not rendered"},
		{"GRPCRoute to the HTTP port", "ambient-canary",
			"    - name: server1-v1\n      port: 50051\n", "    - name: server1-v1\n      port: 8080\n",
			"a GRPCRoute needs a grpc port"},
		{"listener does not admit the route's namespace", "gateway-api-default",
			"kubernetes.io/metadata.name: meshdemo", "kubernetes.io/metadata.name: default",
			"does not match namespace meshdemo"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			orig, err := sharedTree(t).Build(matrix.ScenarioDir(c.profile))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(orig, []byte(c.old)) {
				t.Fatalf("rendered %s does not contain %q: the case no longer applies", c.profile, c.old)
			}
			broken := bytes.ReplaceAll(orig, []byte(c.old), []byte(c.new))
			f, _, err := matrix.ParseProfile(c.profile)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := manifests.Decode(broken)
			if err != nil {
				t.Fatal(err)
			}
			if err := manifests.Check(objs, manifests.Options{Flavour: f, PublishedNodePorts: ports}); err == nil || !strings.Contains(err.Error(), c.rule) {
				t.Errorf("rules: want an error containing %q, got %v", c.rule, err)
			}
			file := writeTemp(t, strings.ReplaceAll(c.name, " ", "-"), broken)
			if msgs, r := analyze(t, file); len(notEnvoyFilterWarning(msgs)) != 0 || r.err != nil {
				t.Errorf("istioctl analyze now reports it (%v, %+v): update the docs that say it cannot", r.err, msgs)
			}
			if v := validate(t, file); v.err != nil || !validateClean(v.stdout+v.stderr) {
				t.Errorf("istioctl validate now rejects it: update the docs that say it cannot\n%s%s", v.stdout, v.stderr)
			}
		})
	}
}
