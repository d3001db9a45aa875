package kindflow

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// MeshCall is a call a kind test makes from inside the mesh, with a workload's identity:
// the tests assert its expected result (Expect), the dry run prints and checks the command.
type MeshCall struct {
	From   string   // the Deployment whose application container makes the call (server1-v1)
	URL    string   // in-cluster URL
	Header []string // "Name: value"
	Want   int      // the status the test expects, or Refused
	// WantIn overrides Want in a flavour whose data plane answers otherwise (ambient: every call
	// goes to the waypoint, which the NetworkPolicies cannot tell apart by callee).
	WantIn map[matrix.Flavour]int
	Why    string
}

// Refused is the expected result of a call the network refuses (the NetworkPolicies of
// istio/mesh, istio/networkpolicy and istio/ambient/base): no HTTP answer comes back from the
// callee (CallResult).
const Refused = 0

// Expect is the result the call must have in a flavour.
func (m MeshCall) Expect(flavour matrix.Flavour) int {
	if w, ok := m.WantIn[flavour]; ok {
		return w
	}
	return m.Want
}

// MeshCalls are the in-mesh calls of the kind tests, by the scenario they run under.
var MeshCalls = map[string][]MeshCall{
	// With sidecars the NetworkPolicies refuse both before the AuthorizationPolicies could:
	// server1 and client have no egress to those pods. In ambient the waypoint is in the path
	// of every call and answers 403 by the caller's identity.
	"authz": {
		{From: "server1-v1", URL: "http://user-service:8080/api/users", Want: Refused, WantIn: map[matrix.Flavour]int{matrix.Ambient: 403},
			Why: "server1 -> user-service is outside the call graph"},
		{From: "client-v1", URL: "http://server2:8080/server2/end", Want: Refused, WantIn: map[matrix.Flavour]int{matrix.Ambient: 403},
			Why: "client -> server2 is outside the call graph"},
		{From: "server1-v1", URL: "http://server2:8080/server2/end", Want: 200, Why: "server1 -> server2 is in the call graph"},
	},
	"hardening": {
		{From: "client-v1", URL: "http://server1:8080/server1/server2", Header: []string{"X-Meshdemo-Fault: server2=abort:503@100"},
			Want: 503, Why: "the gateway strips the directive; inside the mesh it still works"},
	},
	Baseline: { // TestMTLSStrict, TestNetworkPolicy
		{From: "server1-v1", URL: "http://server2:8080/server2/end", Want: 200, Why: "a meshed call passes STRICT mTLS"},
		{From: "server2-v1", URL: "http://user-service:8080/api/users", Want: Refused,
			Why: "NetworkPolicy: server2 calls nothing (egress to DNS, istiod, the tracing collector only), in every flavour"},
		{From: "client-v1", URL: "http://server2:8080/server2/end", Want: Refused, WantIn: map[matrix.Flavour]int{matrix.Ambient: 200},
			Why: "NetworkPolicy: client's sidecar connects to server1 and user-service only; in ambient client reaches the waypoint, " +
				"which may reach server2, and only the authz scenario's L7 policy refuses that call"},
	},
}

// CallResult reads what Exec produced: the status code `/workload get` printed, or Refused when
// no HTTP answer came from the callee. That is get failing with its own error (the connection was
// dropped or reset on the way: kubectl exec exits non-zero with get's "get <URL>: ..." on
// stderr), or the caller's sidecar answering 503 because it could not connect to the callee's
// pod (Envoy's "upstream connect error" body, before its connect timeout ends the call). Any
// other failure (no such pod, kubectl itself) is an error.
func CallResult(call MeshCall, out []byte, execErr error) (int, error) {
	if execErr != nil {
		if strings.Contains(execErr.Error(), "get "+call.URL+":") {
			return Refused, nil
		}
		return 0, execErr
	}
	code, err := ParseGet(out)
	if err != nil {
		return 0, err
	}
	if code == 503 && strings.Contains(string(out), "upstream connect error") {
		return Refused, nil
	}
	return code, nil
}

// MeshCallTimeout bounds each in-mesh call.
const MeshCallTimeout = 10 * time.Second

// AppContainer is the application container of a Deployment named <app>-<version> (verify
// checks every rendered Deployment is named so, with one container named for the app).
func AppContainer(deployment string) string {
	i := strings.LastIndex(deployment, "-")
	if i <= 0 {
		return deployment
	}
	return deployment[:i]
}

// Exec runs the meshed call: `kubectl exec` into the Deployment's application container,
// which runs `/workload get` (the images are FROM scratch: no curl, no shell). That
// container's traffic is captured, so the call carries the workload's SPIFFE identity: by the
// sidecar in the sidecar and gateway-api flavours (a call from the istio-proxy container would
// not be, see CheckExec), by the node's ztunnel in ambient, where the pod has no istio-proxy
// container at all. The same command serves every flavour: CheckExec checks it against the
// flavour's rendered Deployment.
func (c Config) Exec(call MeshCall) []string {
	args := c.kubectl("-n", c.Namespace, "exec", "deploy/"+call.From, "-c", AppContainer(call.From), "--",
		"/workload", "get", "-timeout", MeshCallTimeout.String())
	for _, h := range call.Header {
		args = append(args, "-H", h)
	}
	return append(args, call.URL)
}

// ParseGet reads the status code `/workload get` printed on its first line.
func ParseGet(out []byte) (int, error) {
	first, _, _ := strings.Cut(string(out), "\n")
	code, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || code < 100 || code > 599 {
		return 0, fmt.Errorf("no status code in the output of get: %q", out)
	}
	return code, nil
}

// sidecarContainers are the containers Istio injects. The proxy runs as UID 1337, and the
// pinned Istio's iptables rules (tools/istio-iptables/pkg/capture/run.go: ISTIO_OUTPUT
// `-m owner --uid-owner 1337 -j RETURN`) send that UID's traffic out uncaptured: no mTLS, no
// identity. Under STRICT PeerAuthentication such a call is reset.
var sidecarContainers = []string{"istio-proxy", "istio-init", "istio-validation"}

// GuardKubectl rejects a kubectl command that would run something in a sidecar container,
// or exec without naming the container (kubectl would pick the default one, which under
// native sidecars is not guaranteed to be the application). The suite runs every kubectl
// command through it; reading a sidecar's logs stays allowed.
func GuardKubectl(argv []string) error {
	k, ok := parseKubectl(argv)
	if !ok || (k.Verb != "exec" && k.Verb != "attach" && k.Verb != "debug") {
		return nil
	}
	container := flagValue(k.Args, "-c")
	if container == "" {
		container = flagValue(k.Args, "--container")
	}
	if container == "" {
		return fmt.Errorf("kubectl %s without -c: name the application container (%s)", k.Verb, strings.Join(argv, " "))
	}
	if slices.Contains(sidecarContainers, container) {
		return fmt.Errorf("kubectl %s in the %s container: its traffic bypasses the sidecar (UID 1337 is excluded from capture), "+
			"so a call from there carries no workload identity and STRICT mTLS resets it; exec into the application container and use `/workload get` (%s)",
			k.Verb, container, strings.Join(argv, " "))
	}
	return nil
}

// CheckExec checks an exec command against the objects deployed when it runs: it passes
// GuardKubectl, targets a rendered Deployment, names that Deployment's application
// container (the one with the meshdemo image), and runs /workload (there is nothing else in
// the image).
func CheckExec(objs []Object, argv []string) error {
	if err := GuardKubectl(argv); err != nil {
		return err
	}
	k, ok := parseKubectl(argv)
	if !ok || k.Verb != "exec" {
		return nil
	}
	pos := positional(k.Args)
	if len(pos) == 0 {
		return fmt.Errorf("kubectl exec without a target: %s", strings.Join(argv, " "))
	}
	target, ok := strings.CutPrefix(pos[0], "deploy/")
	if !ok {
		target, ok = strings.CutPrefix(pos[0], "deployment/")
	}
	if !ok {
		return fmt.Errorf("kubectl exec %s: target a Deployment (deploy/<name>), whose pod template the dry run can check", pos[0])
	}
	container := flagValue(k.Args, "-c")
	i := slices.IndexFunc(objs, func(o Object) bool {
		return o.Kind == "Deployment" && o.Name == target && (k.Namespace == "" || o.Namespace == k.Namespace)
	})
	if i < 0 {
		return fmt.Errorf("kubectl exec: no Deployment %s in namespace %q at this point", target, k.Namespace)
	}
	var image string
	for _, ct := range list(dig(objs[i].Doc, "spec", "template", "spec", "containers")) {
		m, _ := ct.(map[string]any)
		if m["name"] == container {
			image, _ = m["image"].(string)
		}
	}
	if !strings.HasPrefix(image, matrix.LocalImagePrefix) {
		return fmt.Errorf("kubectl exec deploy/%s -c %s: not an application container of that Deployment", target, container)
	}
	cmd := argvAfterDashes(k.Args)
	if len(cmd) == 0 || cmd[0] != "/workload" {
		return fmt.Errorf("kubectl exec deploy/%s: runs %v; the image holds only /workload (no shell, no curl)", target, cmd)
	}
	return nil
}

func argvAfterDashes(args []string) []string {
	if i := slices.Index(args, "--"); i >= 0 {
		return args[i+1:]
	}
	return nil
}

// LivePods returns, from `kubectl get pods -o json`, the names of the pods a test may pick:
// running, ready, and not being deleted. `rollout status` returns while the pods of the old
// ReplicaSet are still terminating (they keep phase Running), and a test that picked one
// would make a dying pod sick or watch it disappear.
func LivePods(podList []byte) ([]string, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct {
				Phase      string `json:"phase"`
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(podList, &list); err != nil {
		return nil, fmt.Errorf("pod list: %w", err)
	}
	var out []string
	for _, p := range list.Items {
		if p.Metadata.DeletionTimestamp != nil || p.Status.Phase != "Running" {
			continue
		}
		ready := slices.ContainsFunc(p.Status.Conditions, func(c struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		}) bool {
			return c.Type == "Ready" && c.Status == "True"
		})
		if ready {
			out = append(out, p.Metadata.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// CheckSuiteSources reads the suite's Go files and rejects any call or literal that names a
// sidecar container: running something there is a meshed call without identity (GuardKubectl
// is the run-time half of that rule), and reading its logs would not work in ambient, where
// pods have no sidecar (Config.AccessLogs reads the proxy of the run's flavour).
func CheckSuiteSources(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no Go files in %s", dir)
	}
	var problems []string
	fset := token.NewFileSet()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		p, err := sidecarUses(fset, f, src)
		if err != nil {
			return err
		}
		problems = append(problems, p...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the suite names a sidecar container:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// sidecarUses lists the calls and composite literals of one file whose string arguments
// name a sidecar container, saying why each is wrong.
func sidecarUses(fset *token.FileSet, name string, src []byte) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	check := func(n ast.Node, elems []ast.Expr) {
		var lits []string
		for _, e := range elems {
			if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
				if v, err := strconv.Unquote(b.Value); err == nil {
					lits = append(lits, v)
				}
			}
		}
		if !slices.ContainsFunc(lits, func(s string) bool { return slices.Contains(sidecarContainers, s) }) {
			return
		}
		why := "a call from a sidecar container (its traffic is not captured: no identity, reset by STRICT mTLS); " +
			"exec into the application container and run /workload get (Config.Exec)"
		if slices.Contains(lits, "logs") {
			why = "a sidecar's logs, which ambient pods do not have; read the flavour's proxy with Config.AccessLogs (the waypoint in ambient)"
		}
		out = append(out, fmt.Sprintf("%s: %v: %s", fset.Position(n.Pos()), lits, why))
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			check(n, n.Args)
		case *ast.CompositeLit:
			check(n, n.Elts)
		}
		return true
	})
	return out, nil
}
