package kindflow

import (
	"errors"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

func TestExecRunsGetInTheAppContainer(t *testing.T) {
	c := config(t)
	got := strings.Join(c.Exec(MeshCall{From: "user-service-v2", URL: "http://server2:8080/server2/end", Header: []string{"canary_id: v2"}}), " ")
	want := "kubectl --context kind-meshdemo -n meshdemo exec deploy/user-service-v2 -c user-service -- /workload get -timeout 10s -H canary_id: v2 http://server2:8080/server2/end"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestGuardKubectl(t *testing.T) {
	tests := []struct {
		argv []string
		want string // "" = allowed
	}{
		{[]string{"kubectl", "--context", "k", "-n", "meshdemo", "exec", "deploy/server1-v1", "-c", "istio-proxy", "--", "curl", "http://x"}, "UID 1337"},
		{[]string{"kubectl", "exec", "-n", "meshdemo", "--container=istio-proxy", "deploy/server1-v1", "--", "pilot-agent"}, "UID 1337"},
		{[]string{"kubectl", "exec", "deploy/server1-v1", "--", "/workload", "get", "http://x"}, "without -c"},
		{[]string{"kubectl", "exec", "deploy/server1-v1", "-c", "server1", "--", "/workload", "get", "http://x"}, ""},
		{[]string{"kubectl", "logs", "deploy/server1-v1", "-c", "istio-proxy"}, ""},
		{[]string{"kubectl", "-n", "x", "run", "plain", "--image=meshdemo/client:dev", "--", "get", "http://x"}, ""},
	}
	for _, tt := range tests {
		err := GuardKubectl(tt.argv)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: got %v, want %q", tt.argv, err, tt.want)
		}
	}
}

func TestLivePods(t *testing.T) {
	list := `{"items":[
 {"metadata":{"name":"server2-v1-new-a"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}},
 {"metadata":{"name":"server2-v1-old","deletionTimestamp":"2026-12-01T00:00:00Z"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}},
 {"metadata":{"name":"server2-v1-starting"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"False"}]}},
 {"metadata":{"name":"server2-v1-pending"},"status":{"phase":"Pending"}},
 {"metadata":{"name":"server2-v1-new-b"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}
]}`
	got, err := LivePods([]byte(list))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"server2-v1-new-a", "server2-v1-new-b"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := LivePods([]byte("error: the server doesn't have a resource type")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestParseGet(t *testing.T) {
	for out, want := range map[matrix.Flavour]int{"403\nRBAC: access denied\n": 403, "200\n{}\n": 200, "503\n": 503} {
		if got, err := ParseGet([]byte(out)); err != nil || got != want {
			t.Errorf("%q: %d %v", out, got, err)
		}
	}
	for _, out := range []string{"", "000", "RBAC: access denied", "42\n"} {
		if _, err := ParseGet([]byte(out)); err == nil {
			t.Errorf("%q accepted", out)
		}
	}
}

// TestSuiteSourceCheckRejectsProxyCurl: the source check finds the proxyCurl the suite used
// to have, and the sidecar log read it had until the flavours (ambient pods have no sidecar),
// and lets the application container's exec through.
func TestSuiteSourceCheckRejectsProxyCurl(t *testing.T) {
	src := `package suite
func proxyCurl(deploy, url string) {
	args := []string{"exec", "deploy/" + deploy, "-c", "istio-proxy", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"}
	_ = args
}
func proxyLogs(w string) { run("logs", "deploy/"+w, "-c", "istio-proxy", "--tail=-1") }
func other(w string) { run("exec", "deploy/"+w, "-c", w, "--", "/workload", "get", "http://x") }
`
	got, err := sidecarUses(token.NewFileSet(), "old.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "old.go:3:") || !strings.Contains(got[0], "no identity") ||
		!strings.HasPrefix(got[1], "old.go:6:") || !strings.Contains(got[1], "Config.AccessLogs") {
		t.Fatalf("got %v, want the exec on line 3 and the log read on line 6", got)
	}
	if err := CheckSuiteSources(filepath.Join(config(t).Root, "e2e", "suite")); err != nil {
		t.Error(err)
	}
}

func TestCallResult(t *testing.T) {
	call := MeshCall{From: "server2-v1", URL: "http://user-service:8080/api/users"}
	// What the suite's runArgv returns when kubectl exits non-zero: the command, the exit status,
	// the stderr of get.
	argv := strings.Join(config(t).Exec(call), " ")
	kubectlErr := func(stderr string) error {
		return errors.New(argv + ": exit status 1: " + stderr)
	}
	tests := []struct {
		name    string
		out     string
		err     error
		want    int
		wantErr bool
	}{
		{"answer", "200\n{\"users\":[]}\n", nil, 200, false},
		{"mesh authz", "403\nRBAC: access denied\n", nil, 403, false},
		{"dropped, get times out", "", kubectlErr("get " + call.URL + ": no answer within 10s: context deadline exceeded\n"), Refused, false},
		{"reset by ztunnel", "", kubectlErr("get " + call.URL + ": Get \"" + call.URL + "\": EOF\n"), Refused, false},
		{"sidecar cannot connect", "503\nupstream connect error or disconnect/reset before headers. reset reason: connection timeout\n", nil, Refused, false},
		{"an app's own 503", "503\n{\"title\":\"store unavailable\"}\n", nil, 503, false},
		{"kubectl failed", "", errors.New("kubectl exec: Error from server (NotFound): deployments.apps \"server2-v1\" not found"), 0, true},
		{"another URL's error", "", kubectlErr("get http://elsewhere:8080/: EOF\n"), 0, true},
	}
	for _, tt := range tests {
		got, err := CallResult(call, []byte(tt.out), tt.err)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: got %d, %v; want %d (error %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestMeshCallExpectPerFlavour(t *testing.T) {
	for _, tt := range []struct {
		scenario, from, url string
		want                map[matrix.Flavour]int
	}{
		{Baseline, "server2-v1", "http://user-service:8080/api/users", map[matrix.Flavour]int{matrix.Sidecar: Refused, matrix.GatewayAPI: Refused, matrix.Ambient: Refused}},
		{Baseline, "client-v1", "http://server2:8080/server2/end", map[matrix.Flavour]int{matrix.Sidecar: Refused, matrix.GatewayAPI: Refused, matrix.Ambient: 200}},
		{"authz", "client-v1", "http://server2:8080/server2/end", map[matrix.Flavour]int{matrix.Sidecar: Refused, matrix.GatewayAPI: Refused, matrix.Ambient: 403}},
		{"authz", "server1-v1", "http://server2:8080/server2/end", map[matrix.Flavour]int{matrix.Sidecar: 200, matrix.GatewayAPI: 200, matrix.Ambient: 200}},
	} {
		i := slices.IndexFunc(MeshCalls[tt.scenario], func(c MeshCall) bool { return c.From == tt.from && c.URL == tt.url })
		if i < 0 {
			t.Errorf("%s: no call %s -> %s", tt.scenario, tt.from, tt.url)
			continue
		}
		for f, want := range tt.want {
			if got := MeshCalls[tt.scenario][i].Expect(f); got != want {
				t.Errorf("%s %s -> %s in %s: %d, want %d", tt.scenario, tt.from, tt.url, f, got, want)
			}
		}
	}
}
