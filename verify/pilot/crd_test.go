package pilot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"istio.io/istio/pkg/config/crd"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Validation of every rendered custom resource, offline, the way the API server of a cluster
// with the CRDs installed would do it: Istio's own CRD validator (istio.io/istio/pkg/config/crd,
// which runs the apiextensions-apiserver's OpenAPI schema validation, list-type checks, pruning
// of unknown fields and the CRDs' CEL rules) over the CRD YAML shipped in the pinned modules —
// the Gateway API's standard and experimental channels (sigs.k8s.io/gateway-api) and Istio's own
// CRDs (istio.io/istio manifests) — plus a strict decode of every Gateway API object into the
// sigs.k8s.io/gateway-api Go types. Nothing here re-implements a rule of the CRDs.

const crdGatewayAPIGroup = "gateway.networking.k8s.io"

// crdRender renders a preset or scenario of a flavour as kind gets it, the declaration's
// matrix.ScenarioIn (what deploy/scenarios/<profile> holds; verify/manifests checks that the
// generated files are current).
func crdRender(t testing.TB, mem filesys.FileSystem, f matrix.Flavour, name string) []object {
	t.Helper()
	return renderComposition(t, mem, matrix.ScenarioIn(f, name), "/repo/crd-render-"+f.Profile(name))
}

// crdValidators holds one validator per CRD set. Building them compiles every CEL rule of the
// CRDs, so it happens once per test binary.
type crdValidators struct {
	standard, experimental, istio *crd.Validator
}

var loadCRDValidators = sync.OnceValues(func() (*crdValidators, error) {
	gwDir, err := crdModuleDir("sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	istioDir, err := crdModuleDir("istio.io/istio")
	if err != nil {
		return nil, err
	}
	var v crdValidators
	for _, c := range []struct {
		into  **crd.Validator
		files func() ([]string, error)
	}{
		{&v.standard, func() ([]string, error) { return crdFiles(filepath.Join(gwDir, "config/crd/standard")) }},
		{&v.experimental, func() ([]string, error) { return crdFiles(filepath.Join(gwDir, "config/crd/experimental")) }},
		{&v.istio, func() ([]string, error) {
			return []string{filepath.Join(istioDir, "manifests/charts/base/files/crd-all.gen.yaml")}, nil
		}},
	} {
		files, err := c.files()
		if err != nil {
			return nil, err
		}
		// The CRDs are the pinned upstream release, trusted as the API server would trust an
		// installed CRD: skip the (slow) validation of the CRD definitions themselves.
		*c.into, err = crd.NewValidatorFromFilesWithOptions(files, crd.WithoutCRDValidation())
		if err != nil {
			return nil, fmt.Errorf("CRD validator from %v: %w", files, err)
		}
	}
	return &v, nil
})

func crdValidatorsFor(t testing.TB) *crdValidators {
	t.Helper()
	v, err := loadCRDValidators()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// crdModuleDir asks the go command where the pinned module lives, so the CRD YAML is read from
// the module cache at exactly the version go.mod pins (no copy in the repository).
func crdModuleDir(mod string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go list -m %s: %v: %s", mod, err, ee.Stderr)
		}
		return "", fmt.Errorf("go list -m %s: %w", mod, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m %s: module not downloaded", mod)
	}
	return dir, nil
}

// crdFiles lists the CRD YAML of one Gateway API channel directory (its kustomization.yaml is
// not a CRD).
func crdFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "kustomization.yaml" })
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRD YAML in %s", dir)
	}
	return files, nil
}

// crdIsGatewayAPI reports whether the object is of a gateway.networking.k8s.io kind (any
// version; a core object's apiVersion has no group).
func crdIsGatewayAPI(o object) bool {
	g, _, found := strings.Cut(o.apiVersion(), "/")
	return found && g == crdGatewayAPIGroup
}

// crdUnstructured converts a rendered object the way the API server decodes a request body
// (integers as int64), into a fresh copy the validator may default in place.
func crdUnstructured(o object) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(map[string]any(o))
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return u, nil
}

// crdValidate runs the CRD validator over one object: OpenAPI schema, list types, unknown
// (pruned) fields and CEL rules.
func crdValidate(v *crd.Validator, o object) error {
	u, err := crdUnstructured(o)
	if err != nil {
		return err
	}
	return v.ValidateCustomResource(u)
}

// crdDecoder decodes into the sigs.k8s.io/gateway-api Go types with the API machinery's
// strict JSON serializer: an unknown or duplicate field is an error, as is a kind the Go types
// do not know.
var crdDecoder = sync.OnceValues(func() (runtime.Decoder, error) {
	scheme := runtime.NewScheme()
	if err := gwv1.Install(scheme); err != nil {
		return nil, err
	}
	if err := gwv1beta1.Install(scheme); err != nil {
		return nil, err
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Strict: true}), nil
})

func crdStrictDecode(o object) error {
	dec, err := crdDecoder()
	if err != nil {
		return err
	}
	b, err := json.Marshal(map[string]any(o))
	if err != nil {
		return err
	}
	if _, _, err := dec.Decode(b, nil, nil); err != nil {
		return fmt.Errorf("%s/%s/%s: %w", o.kind(), o.name(), o.namespace(), err)
	}
	return nil
}

// crdFindings validates every custom resource of a render: Gateway API objects against gw and
// by strict decoding, Istio objects against Istio's CRDs. Other objects (core Kubernetes kinds)
// are not custom resources. It returns the findings by object and the kinds it validated.
func crdFindings(v *crdValidators, gw *crd.Validator, objs []object) (map[string]error, map[string]int) {
	findings := map[string]error{}
	kinds := map[string]int{}
	for _, o := range objs {
		var errs []error
		switch {
		case crdIsGatewayAPI(o):
			errs = append(errs, crdValidate(gw, o), crdStrictDecode(o))
		case o.isIstio():
			errs = append(errs, crdValidate(v.istio, o))
		default:
			continue
		}
		kinds[o.kind()]++
		if err := errors.Join(errs...); err != nil {
			findings[o.kind()+"/"+o.name()] = err
		}
	}
	return findings, kinds
}

// TestCRDValidation renders every preset and scenario of every flavour and validates each
// custom resource. Gateway API objects must pass the standard channel's CRDs, except the
// HTTPRoute `retry` of scenario retries (experimental channel only), which the standard CRDs
// must reject as an unknown field; every render passes the experimental channel (a superset).
func TestCRDValidation(t *testing.T) {
	v := crdValidatorsFor(t)
	mem := loadManifests(t)
	for _, f := range matrix.Flavours() {
		for _, name := range slices.Concat(matrix.PresetNames(), matrix.ScenarioNames()) {
			t.Run(f.String()+"/"+name, func(t *testing.T) {
				objs := crdRender(t, mem, f, name)

				findings, kinds := crdFindings(v, v.standard, objs)
				wantRejected := map[string]bool{}
				if f.GatewayAPIRoutes() && name == "retries" {
					wantRejected = map[string]bool{"HTTPRoute/server2": true, "HTTPRoute/user-service": true}
				}
				for id, err := range findings {
					if !wantRejected[id] {
						t.Errorf("standard channel: %v", err)
						continue
					}
					// The only finding is the experimental field: pruned as unknown by the
					// standard CRD schema (kubectl's strict field validation rejects it; a
					// client that does not ask for it would see it silently dropped).
					msg := err.Error()
					if !strings.Contains(msg, "unknown fields [spec.rules[0].retry]") ||
						strings.Count(msg, "\n") > 0 {
						t.Errorf("standard channel, %s: want only the unknown field spec.rules[0].retry, got %v", id, err)
					}
					t.Logf("standard channel rejects, as it must: %v", err)
				}
				for id := range wantRejected {
					if findings[id] == nil {
						t.Errorf("standard channel accepted %s: its retry is an experimental field", id)
					}
				}

				expFindings, _ := crdFindings(v, v.experimental, objs)
				for _, err := range expFindings {
					t.Errorf("experimental channel: %v", err)
				}

				// The render must hold what the flavour is about, so a broken composition
				// cannot pass by validating nothing.
				want := []string{"PeerAuthentication", "Telemetry"}
				if !f.GatewayAPIRoutes() {
					want = append(want, "VirtualService", "DestinationRule")
				} else {
					want = append(want, "Gateway", "HTTPRoute", "GRPCRoute")
				}
				for _, k := range want {
					if kinds[k] == 0 {
						t.Errorf("no %s validated in %s %s (kinds seen: %v)", k, f, name, kinds)
					}
				}
				if f.GatewayAPIRoutes() {
					for _, k := range []string{"VirtualService"} {
						if kinds[k] != 0 {
							t.Errorf("%s %s renders a %s", f, name, k)
						}
					}
				}
				t.Logf("validated %v", kinds)
			})
		}
	}
}

// crdFixture breaks one rendered object; check names the check that must catch it.
type crdFixture struct {
	name         string
	flavour      matrix.Flavour
	render       string
	kind, object string
	mutate       func(o object) error
	check        string // "standard", "experimental", "istio" (CRD validator) or "strict" (Go types)
	want         string // loose substring of the error
}

func crdFixtures() []crdFixture {
	rule0 := func(o object) (map[string]any, error) {
		rules := listAt(o, "spec", "rules")
		if len(rules) == 0 {
			return nil, fmt.Errorf("%w: %s %s has no rules", errNoTarget, o.kind(), o.name())
		}
		r, _ := rules[0].(map[string]any)
		return r, nil
	}
	backend0 := func(o object) (map[string]any, error) {
		r, err := rule0(o)
		if err != nil {
			return nil, err
		}
		refs, _ := r["backendRefs"].([]any)
		if len(refs) == 0 {
			return nil, fmt.Errorf("%w: %s %s rule 0 has no backendRefs", errNoTarget, o.kind(), o.name())
		}
		b, _ := refs[0].(map[string]any)
		return b, nil
	}
	return []crdFixture{
		{
			name: "HTTPRoute Service backendRef without port (CEL)", flavour: matrix.GatewayAPI, render: "default",
			kind: "HTTPRoute", object: "server1", check: "standard", want: "Must have port for Service reference",
			mutate: func(o object) error {
				b, err := backend0(o)
				if err == nil {
					delete(b, "port")
				}
				return err
			},
		},
		{
			name: "GRPCRoute Service backendRef without port (CEL)", flavour: matrix.Ambient, render: "grpc-balancing",
			kind: "GRPCRoute", object: "server2-grpc", check: "standard", want: "Must have port for Service reference",
			mutate: func(o object) error {
				b, err := backend0(o)
				if err == nil {
					delete(b, "port")
				}
				return err
			},
		},
		{
			name: "HTTPRoute backendRef weight -1 (schema)", flavour: matrix.GatewayAPI, render: "weighted-split",
			kind: "HTTPRoute", object: "server1", check: "standard", want: "should be greater than or equal to 0",
			mutate: func(o object) error {
				b, err := backend0(o)
				if err == nil {
					b["weight"] = -1
				}
				return err
			},
		},
		{
			name: "Gateway listener hostname not a DNS name (schema)", flavour: matrix.GatewayAPI, render: "canary",
			kind: "Gateway", object: "meshdemo-gateway", check: "standard", want: "hostname",
			mutate: func(o object) error {
				ls := listAt(o, "spec", "listeners")
				if len(ls) == 0 {
					return fmt.Errorf("%w: Gateway without listeners", errNoTarget)
				}
				ls[0].(map[string]any)["hostname"] = "client_meshdemo"
				return nil
			},
		},
		{
			name: "HTTPRoute backendRequest timeout longer than request timeout (CEL)", flavour: matrix.GatewayAPI,
			render: "route-timeout", kind: "HTTPRoute", object: "client", check: "standard",
			want: "backendRequest timeout cannot be longer than request timeout",
			mutate: func(o object) error {
				r, err := rule0(o)
				if err != nil {
					return err
				}
				to, _ := r["timeouts"].(map[string]any)
				if to["request"] != "5s" {
					return fmt.Errorf("%w: HTTPRoute client rule 0 timeouts %v, want request 5s", errNoTarget, to)
				}
				to["backendRequest"] = "10s"
				return nil
			},
		},
		{
			name: "HTTPRoute unknown field (strict decode)", flavour: matrix.Ambient, render: "default",
			kind: "HTTPRoute", object: "user-service", check: "strict", want: `unknown field "spec.rules[0].timeout"`,
			mutate: func(o object) error {
				r, err := rule0(o)
				if err == nil {
					r["timeout"] = "1s" // the field is timeouts.request
				}
				return err
			},
		},
		{
			name: "HTTPRoute unknown field (CRD pruning)", flavour: matrix.Ambient, render: "default",
			kind: "HTTPRoute", object: "user-service", check: "experimental", want: "unknown fields [spec.rules[0].timeout]",
			mutate: func(o object) error {
				r, err := rule0(o)
				if err == nil {
					r["timeout"] = "1s"
				}
				return err
			},
		},
		{
			name: "AuthorizationPolicy with targetRefs and selector (Istio CEL)", flavour: matrix.Ambient, render: "authz",
			kind: "AuthorizationPolicy", object: "server1-l7", check: "istio",
			want: "only one of targetRefs or selector can be set",
			mutate: func(o object) error {
				if len(listAt(o, "spec", "targetRefs")) == 0 {
					return fmt.Errorf("%w: AuthorizationPolicy server1-l7 has no targetRefs", errNoTarget)
				}
				o.spec()["selector"] = map[string]any{"matchLabels": map[string]any{"app": "server1"}}
				return nil
			},
		},
		{
			name: "DestinationRule unknown load balancer (Istio schema)", flavour: matrix.Sidecar, render: "grpc-balancing",
			kind: "DestinationRule", object: "server1", check: "istio", want: "LEAST_REQUESTS",
			mutate: func(o object) error {
				lb := mapAt(o, "spec", "trafficPolicy", "loadBalancer")
				if lb["simple"] != "LEAST_REQUEST" {
					return fmt.Errorf("%w: DestinationRule server1 loadBalancer %v", errNoTarget, lb)
				}
				lb["simple"] = "LEAST_REQUESTS"
				return nil
			},
		},
	}
}

// TestCRDValidationBrokenFixtures proves each check fails: every fixture breaks one object of
// a real render in a way the named check must report.
func TestCRDValidationBrokenFixtures(t *testing.T) {
	v := crdValidatorsFor(t)
	mem := loadManifests(t)
	for _, fx := range crdFixtures() {
		t.Run(fx.name, func(t *testing.T) {
			objs := crdRender(t, mem, fx.flavour, fx.render)
			o, err := one(objs, fx.kind, fx.object)
			if err != nil {
				t.Fatal(err)
			}
			check := map[string]func(object) error{
				"standard":     func(o object) error { return crdValidate(v.standard, o) },
				"experimental": func(o object) error { return crdValidate(v.experimental, o) },
				"istio":        func(o object) error { return crdValidate(v.istio, o) },
				"strict":       crdStrictDecode,
			}[fx.check]
			if err := check(o); err != nil {
				t.Fatalf("%s %s fails the %s check before the fixture breaks it: %v", fx.kind, fx.object, fx.check, err)
			}
			if err := fx.mutate(o); err != nil {
				t.Fatal(err)
			}
			err = check(o)
			if err == nil {
				t.Fatalf("%s check accepted the broken %s %s", fx.check, fx.kind, fx.object)
			}
			if !strings.Contains(err.Error(), fx.want) {
				t.Fatalf("%s check: want an error containing %q, got %v", fx.check, fx.want, err)
			}
			t.Logf("%s: %v", fx.check, err)
		})
	}
}
