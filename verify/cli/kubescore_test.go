package cli

import (
	"github.com/meshdemo/meshdemo/deploy/matrix"

	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meshdemo/meshdemo/verify/manifests"
	"sigs.k8s.io/yaml"
)

// waiversFile holds the kube-score findings meshdemo accepts, each with its reason.
const waiversFile = "build/kube-score/waivers.yaml"

type waiver struct {
	Check  string   `json:"check"`
	Kind   string   `json:"kind"`
	Names  []string `json:"names"`
	Reason string   `json:"reason"`
}

func (w waiver) matches(f finding) bool {
	if w.Check != f.Check || w.Kind != f.Kind {
		return false
	}
	return slices.ContainsFunc(w.Names, func(p string) bool { ok, _ := path.Match(p, f.Name); return ok })
}

func readWaivers(t testing.TB) []waiver {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), waiversFile))
	if err != nil {
		t.Fatal(err)
	}
	var ws []waiver
	if err := yaml.UnmarshalStrict(data, &ws); err != nil {
		t.Fatalf("%s: %v", waiversFile, err)
	}
	for i, w := range ws {
		if w.Check == "" || w.Kind == "" || len(w.Names) == 0 || len(strings.Fields(w.Reason)) < 5 {
			t.Fatalf("%s: waiver %d (%s) needs a check, a kind, names and a reason", waiversFile, i, w.Check)
		}
	}
	return ws
}

// finding is one check kube-score graded WARNING or CRITICAL on one object.
type finding struct {
	Check, Kind, Name, Grade, Comment string
}

func (f finding) String() string {
	return fmt.Sprintf("%s %s %s/%s: %s", f.Grade, f.Check, f.Kind, f.Name, f.Comment)
}

// kube-score's grades (scorecard.Grade): Critical 1, Warning 5, AlmostOK 7, AllOK 10.
var kubeScoreGrades = map[int]string{1: "CRITICAL", 5: "WARNING"}

// kubeScore runs `kube-score score -o json` on a rendered file and returns its findings. kube-score
// exits 1 when it finds something critical; the JSON is the answer either way.
func kubeScore(t testing.TB, file string) []finding {
	t.Helper()
	r := run(t, filepath.Dir(file), nil, tool(t, "KUBE_SCORE", "kube-score"), "score", "-o", "json", file)
	var objs []struct {
		TypeMeta struct {
			Kind string `json:"kind"`
		} `json:"type_meta"`
		ObjectMeta struct {
			Name string `json:"name"`
		} `json:"object_meta"`
		Checks []struct {
			Check struct {
				ID string `json:"id"`
			} `json:"check"`
			Grade    int  `json:"grade"`
			Skipped  bool `json:"skipped"`
			Comments []struct {
				Summary     string `json:"summary"`
				Description string `json:"description"`
			} `json:"comments"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &objs); err != nil || len(objs) == 0 {
		t.Fatalf("kube-score printed no JSON (%v, exit %v):\nstdout: %.2000s\nstderr: %s", err, r.err, r.stdout, r.stderr)
	}
	var out []finding
	for _, o := range objs {
		for _, c := range o.Checks {
			grade, bad := kubeScoreGrades[c.Grade]
			if c.Skipped || !bad {
				continue
			}
			var comments []string
			for _, cm := range c.Comments {
				comments = append(comments, strings.TrimSpace(cm.Summary+" "+cm.Description))
			}
			out = append(out, finding{Check: c.Check.ID, Kind: o.TypeMeta.Kind, Name: o.ObjectMeta.Name, Grade: grade, Comment: strings.Join(comments, "; ")})
		}
	}
	return out
}

// unwaived splits findings into those no waiver covers, and marks the waivers used.
func unwaived(fs []finding, ws []waiver, used []bool) []finding {
	var out []finding
	for _, f := range fs {
		i := slices.IndexFunc(ws, func(w waiver) bool { return w.matches(f) })
		if i < 0 {
			out = append(out, f)
			continue
		}
		if used != nil {
			used[i] = true
		}
	}
	return out
}

// kube-score finds nothing in any deployed render (every profile of every flavour, as `make
// deploy` applies it) beyond the waivers of build/kube-score/waivers.yaml, and every waiver is
// still needed by some render.
func TestKubeScoreEveryScenario(t *testing.T) {
	t.Parallel()
	ws := readWaivers(t)
	var mu sync.Mutex
	used := make([]bool, len(ws))
	t.Run("profiles", func(t *testing.T) {
		for _, p := range matrix.Profiles() {
			t.Run(p, func(t *testing.T) {
				t.Parallel()
				data, err := sharedTree(t).Build(matrix.ScenarioDir(p))
				if err != nil {
					t.Fatal(err)
				}
				fs := kubeScore(t, writeTemp(t, p, data))
				mu.Lock()
				left := unwaived(fs, ws, used)
				mu.Unlock()
				for _, f := range left {
					t.Errorf("kube-score: %s", f)
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	for i, w := range ws {
		if !used[i] {
			t.Errorf("%s: waiver %s for %s %v matches no finding in any render: remove it", waiversFile, w.Check, w.Kind, w.Names)
		}
	}
}

// Each broken variant is a finding kube-score reports and no waiver covers: the run above can
// fail, on the hygiene this repository added for it.
func TestKubeScoreRejectsBrokenScenarios(t *testing.T) {
	t.Parallel()
	ws := readWaivers(t)
	for _, tc := range []struct {
		name, file, old, new, profile, check string
	}{
		{"no-networkpolicy", "istio/sidecar/base/kustomization.yaml", "  - ../../mesh\n  - ../../networkpolicy/sidecars\n  - networkpolicy.yaml\n", "", "default", "pod-networkpolicy"},
		{"no-ephemeral-storage-limit", "deploy/base/server2.yaml", "              ephemeral-storage: 64Mi\n", "", "gateway-api-default", "container-ephemeral-storage-request-and-limit"},
		{"governing-service-not-headless", "deploy/components/postgres/postgres.yaml", "  clusterIP: None\n", "", "ambient-canary", "statefulset-has-servicename"},
		{"replicas-without-budget", "deploy/base/pdb.yaml", "      app: server1\n      version: v1\n", "      app: server1\n      version: v9\n", "grpc-balancing", "deployment-has-poddisruptionbudget"},
		{"policy-selecting-nothing", "istio/networkpolicy/sidecars/callgraph.yaml", "      app: server2\n  policyTypes: [Ingress]\n", "      app: server3\n  policyTypes: [Ingress]\n", "canary", "networkpolicy-targets-pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tree, err := manifests.LoadTree(repoRoot(t))
			if err != nil {
				t.Fatal(err)
			}
			orig, err := tree.Read(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(orig, []byte(tc.old)) {
				t.Fatalf("%s does not contain %q: the fixture no longer applies", tc.file, tc.old)
			}
			if err := tree.Write(tc.file, bytes.Replace(orig, []byte(tc.old), []byte(tc.new), 1)); err != nil {
				t.Fatal(err)
			}
			data, err := tree.Build(matrix.ScenarioDir(tc.profile))
			if err != nil {
				t.Fatal(err)
			}
			left := unwaived(kubeScore(t, writeTemp(t, tc.name, data)), ws, nil)
			if !slices.ContainsFunc(left, func(f finding) bool { return f.Check == tc.check }) {
				t.Fatalf("no unwaived %s finding; kube-score left %v", tc.check, left)
			}
			t.Logf("caught: %v", left)
		})
	}
}
