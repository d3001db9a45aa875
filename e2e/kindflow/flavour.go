package kindflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// FlavourLabel on the istio-system namespace records which flavour Istio was installed for.
// One cluster runs one flavour: the three need different Istio installs (the classic ingress
// gateway holds NodePort 30080 in sidecar, the Gateway API gateway in the others; ambient adds
// ztunnel and pods that were injected must be recreated), so a switch of flavour
// is `make kind-down kind-up` and an install, never a reinstall over another flavour.
const FlavourLabel = "meshdemo-flavour"

// InstalledFlavourQuery prints "" when istio-system does not exist, "istio-system:" when it
// exists without the label (an install from before the flavours: sidecar) and
// "istio-system:<flavour>" otherwise.
func (c Config) InstalledFlavourQuery() []string {
	return c.kubectl("get", "namespace", "istio-system", "--ignore-not-found",
		"-o", "jsonpath={.metadata.name}:{.metadata.labels."+FlavourLabel+"}")
}

// CheckInstalledFlavour reads the output of the installed-flavour query and refuses a cluster
// whose Istio was installed for another flavour. installing is true for the guard of the
// install itself, which accepts a cluster without Istio, and an Istio installed before the
// flavours existed (unlabelled: sidecar), which the install brings up to date. Everything else
// (deploy, the suite) needs the labelled install: it also holds the Gateway API CRDs, which
// every prune may name.
func CheckInstalledFlavour(out []byte, want matrix.Flavour, cluster string, installing bool) error {
	s := strings.TrimSpace(string(out))
	if s == "" {
		if installing {
			return nil // no Istio yet
		}
		return fmt.Errorf("cluster %s has no Istio: make istio-install FLAVOUR=%s first", cluster, want)
	}
	ns, label, ok := strings.Cut(s, ":")
	if !ok || ns != "istio-system" {
		return fmt.Errorf("unexpected answer to the installed-flavour query: %q", s)
	}
	got := matrix.Flavour(label)
	if got == "" {
		if !installing {
			return fmt.Errorf("cluster %s runs an Istio installed before the flavours (istio-system has no %s label, and the Gateway API CRDs "+
				"the prune names may be missing): run make istio-install FLAVOUR=%s once more", cluster, FlavourLabel, want)
		}
		got = matrix.Sidecar // installed before the flavours existed
	}
	if got != want {
		return fmt.Errorf("cluster %s runs Istio for the %s flavour, not %s: one cluster holds one flavour "+
			"(different Istio installs, different ingress on NodePort 30080); recreate it: "+
			"make kind-down kind-up istio-install FLAVOUR=%s, then make deploy FLAVOUR=%s (or make e2e FLAVOUR=%s, which does all of it)",
			cluster, got, want, want, want, want)
	}
	return nil
}

// FlavourGuard refuses to go on when the cluster's Istio is of another flavour: the first step
// of IstioInstall (installing) and of `make deploy`.
func (c Config) FlavourGuard(name string, installing bool) Step {
	note := "refuses unless istio-system is labelled " + FlavourLabel + "=" + c.Flavour.String()
	if installing {
		note = "refuses if istio-system is labelled " + FlavourLabel + " with another flavour than " + c.Flavour.String()
	}
	return Step{Name: name, Args: c.InstalledFlavourQuery(), Note: note,
		Check: func(out []byte) error { return CheckInstalledFlavour(out, c.Flavour, c.Cluster, installing) }}
}

// gatewayAPIModule is the Gateway API module at the version the pinned Istio requires.
type gatewayAPIModule struct{ Version, Dir string }

var gatewayAPIModules sync.Map // root -> gatewayAPIModule

// GatewayAPICRDs is the directory of the Gateway API CRDs the gateway-api and ambient flavours
// install: config/crd/experimental of the sigs.k8s.io/gateway-api module at the version
// build/tools (the istioctl pins) requires, from the Go module cache (`go mod download` fetches
// it from the module proxy if needed; nothing else is downloaded). Experimental, a superset of
// the standard channel, because the retries scenario sets HTTPRoute retry, which only the
// experimental CRD has. The directory holds a kustomization.yaml (without apiVersion and kind,
// so `kubectl apply -f <dir>` would fail on it): it is applied with -k.
func (c Config) GatewayAPICRDs(ctx context.Context) (version, dir string, err error) {
	m, err := c.gatewayAPIModule(ctx)
	if err != nil {
		return "", "", err
	}
	return m.Version, filepath.Join(m.Dir, "config", "crd", "experimental"), nil
}

// gatewayAPIModule asks the go command for the module once per repository root.
func (c Config) gatewayAPIModule(ctx context.Context) (gatewayAPIModule, error) {
	if v, ok := gatewayAPIModules.Load(c.Root); ok {
		return v.(gatewayAPIModule), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "sigs.k8s.io/gateway-api")
	cmd.Dir = filepath.Join(c.Root, "build", "tools")
	cmd.Env = append(cmd.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return gatewayAPIModule{}, fmt.Errorf("go mod download sigs.k8s.io/gateway-api (in build/tools): %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var m gatewayAPIModule
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil || m.Dir == "" || m.Version == "" {
		return gatewayAPIModule{}, fmt.Errorf("go mod download sigs.k8s.io/gateway-api: no module directory in %q (%v)", stdout.String(), err)
	}
	gatewayAPIModules.Store(c.Root, m)
	return m, nil
}

// CheckGatewayAPICRDs checks what the CRD step applies (the kustomize render of the CRD
// directory): the Gateway API kinds the flavours use, of the experimental channel, at the
// module's bundle version, with HTTPRoute's retry field (the retries scenario).
func CheckGatewayAPICRDs(objs []Object, version string) error {
	var problems []string
	found := map[string]bool{}
	for _, o := range objs {
		if o.Kind != "CustomResourceDefinition" {
			continue
		}
		group, _ := dig(o.Doc, "spec", "group").(string)
		kind, _ := dig(o.Doc, "spec", "names", "kind").(string)
		if group != "gateway.networking.k8s.io" {
			continue
		}
		found[kind] = true
		ann, _ := dig(o.Doc, "metadata", "annotations").(map[string]any)
		if ch := ann["gateway.networking.k8s.io/channel"]; ch != "experimental" {
			problems = append(problems, fmt.Sprintf("%s: channel %v, want experimental (HTTPRoute retry)", o.Name, ch))
		}
		if bv := ann["gateway.networking.k8s.io/bundle-version"]; bv != version {
			problems = append(problems, fmt.Sprintf("%s: bundle-version %v, want %s (the module version)", o.Name, bv, version))
		}
		if kind == "HTTPRoute" && !httpRouteHasRetry(o.Doc) {
			problems = append(problems, "HTTPRoute CRD: no spec.rules[].retry in the v1 schema (the retries scenario needs it)")
		}
	}
	for _, k := range []string{"GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant"} {
		if !found[k] {
			problems = append(problems, "no CRD for "+k)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("Gateway API CRDs: %s", strings.Join(problems, "; "))
	}
	return nil
}

func httpRouteHasRetry(crd map[string]any) bool {
	for _, v := range list(dig(crd, "spec", "versions")) {
		if dig(v, "name") != "v1" {
			continue
		}
		rules := dig(v, "schema", "openAPIV3Schema", "properties", "spec", "properties", "rules", "items", "properties")
		if m, _ := rules.(map[string]any); m["retry"] != nil {
			return true
		}
	}
	return false
}

// IstioCreated is the Deployment istiod's deployment controller makes for a Gateway API
// Gateway: <name>-<gatewayClassName> for the istio class, <name> for istio-waypoint (the
// waypoint class disables the suffix; pinned Istio, pilot/pkg/config/kube/gatewaycommon:
// GetDefaultName and classinfo.go). ok is false for objects that are not such a Gateway.
func IstioCreated(o Object) (deployment string, ok bool, err error) {
	if o.Kind != "Gateway" || o.Group() != "gateway.networking.k8s.io" {
		return "", false, nil
	}
	switch class, _ := dig(o.Doc, "spec", "gatewayClassName").(string); class {
	case "istio":
		return o.Name + "-istio", true, nil
	case "istio-waypoint":
		return o.Name, true, nil
	default:
		return "", false, fmt.Errorf("Gateway %s/%s: gatewayClassName %q, the kind flow knows istio and istio-waypoint", o.Namespace, o.Name, class)
	}
}

// AccessLogs is the kubectl command that reads the Envoy access log of the proxy that serves a
// workload's traffic: its sidecar in sidecar and gateway-api, the namespace's waypoint in
// ambient (there is no sidecar; istio/ambient/base's Telemetry targets the waypoint).
func (c Config) AccessLogs(deployment string) []string {
	if !c.Flavour.Sidecars() {
		deployment = "waypoint"
	}
	return c.kubectl("-n", c.Namespace, "logs", "deploy/"+deployment, "-c", "istio-proxy", "--tail=-1")
}

// AttemptCountHeader says whether the proxy that retries a hop tells the callee the attempt
// number (x-envoy-attempt-count, which the workloads show as ;attempt=N in X-Meshdemo-Path).
// Sidecars do (Istio sets include_request_attempt_count on their outbound virtual hosts); the
// waypoint does not: the pinned Istio builds its inbound virtual hosts without it
// (pilot/pkg/networking/core/listener_waypoint.go), so in ambient a retry is seen only by its
// effect (the success rate) and in the callee's own request count.
func (c Config) AttemptCountHeader() bool { return c.Flavour.Sidecars() }

// RetriesTimedOutTry says whether the retries scenario retries a try cut by its 1 s per-try
// timeout. Envoy retries such a try (a local reset) only when retry_on has reset, 5xx or
// gateway-error (envoyproxy/envoy source/common/router/router.cc Filter::onPerTryTimeoutCommon,
// retry_state_impl.cc RetryStateImpl::wouldRetryFromReset). The sidecar flavour's VirtualService
// says 5xx and reset; an HTTPRoute retry lists status codes only, and the pinned Istio adds
// connect-failure, refused-stream, unavailable and cancelled (pilot/pkg/config/kube/gateway/
// conversion.go), so in gateway-api and ambient a slow try ends the call with 504 after one try.
// verify/pilot proves both on istiod's own output (the envoy-retries checks).
func (c Config) RetriesTimedOutTry() bool { return !c.Flavour.GatewayAPIRoutes() }

// OutlierView says where the outlier detection test reads Envoy's view of server2's v1
// endpoints: the pods to port-forward 15000 (Envoy's admin, on the pod's loopback) and the
// cluster whose endpoint lines carry the health flags. Sidecar: server1's sidecar, the v1 subset
// of server2; gateway-api: server1's sidecar, the per-version Service server2-v1 (HTTPRoute
// cannot name a subset); ambient: the waypoint, whose inbound-vip cluster for server2-v1 takes
// the DestinationRule's outlier detection.
func (c Config) OutlierView() (podSelector, cluster string) {
	host := func(svc string) string { return svc + "." + c.Namespace + ".svc.cluster.local" }
	switch c.Flavour {
	case matrix.GatewayAPI:
		return "app=server1,version=v1", "outbound|8080||" + host("server2-v1")
	case matrix.Ambient:
		return "gateway.networking.k8s.io/gateway-name=waypoint", "inbound-vip|8080|http|" + host("server2-v1")
	default:
		return "app=server1,version=v1", "outbound|8080|v1|" + host("server2")
	}
}
