package manifests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"istio.io/istio/pkg/config/crd"
)

// The API server's own validation of the Gateway API objects, offline: OpenAPI schema, unknown
// fields (pruning) and the CEL rules of the CRDs that sigs.k8s.io/gateway-api ships at the version
// this module pins (the one the pinned Istio uses, and the one `make istio-install` installs),
// through Istio's CRD validator (pkg/config/crd, the apiextensions-apiserver code). The standard
// channel for every profile but retries, whose HTTPRoute `retry` exists in the experimental
// channel only.

var (
	crdOnce       sync.Once
	crdValidators map[string]*crd.Validator // by channel: standard, experimental
	crdErr        error
)

// gatewayAPIValidator is the validator of a channel of the pinned Gateway API CRDs.
func gatewayAPIValidator(t testing.TB, channel string) *crd.Validator {
	t.Helper()
	crdOnce.Do(func() {
		cmd := exec.Command("go", "list", "-m", "-json", "sigs.k8s.io/gateway-api")
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.Output()
		if err != nil {
			crdErr = err
			return
		}
		var m struct{ Dir, Version string }
		if crdErr = json.Unmarshal(out, &m); crdErr != nil {
			return
		}
		crdValidators = map[string]*crd.Validator{}
		for _, ch := range []string{"standard", "experimental"} {
			// The kinds Decode accepts; compiling every CRD's CEL rules would double the time.
			var files []string
			for _, kind := range []string{"gateways", "httproutes", "grpcroutes"} {
				files = append(files, filepath.Join(m.Dir, "config", "crd", ch, "gateway.networking.k8s.io_"+kind+".yaml"))
			}
			v, err := crd.NewValidatorFromFiles(files...)
			if err != nil {
				crdErr = err
				return
			}
			crdValidators[ch] = v
		}
	})
	if crdErr != nil {
		t.Fatalf("Gateway API CRDs of sigs.k8s.io/gateway-api: %v", crdErr)
	}
	return crdValidators[channel]
}

// validateGatewayAPI validates every gateway.networking.k8s.io object of a render.
func validateGatewayAPI(t testing.TB, v *crd.Validator, objs []Object) []error {
	t.Helper()
	var errs []error
	for _, o := range objs {
		if !strings.HasPrefix(o.APIVersion, gatewayGroup+"/") {
			continue
		}
		if err := v.ValidateCustomResourceYAML(string(o.YAML), nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// channelOf is the Gateway API channel a scenario needs.
func channelOf(scenario string) string {
	if scenario == "retries" {
		return "experimental"
	}
	return "standard"
}

func TestGatewayAPIObjectsPassTheCRDs(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	for _, f := range Flavours[1:] {
		for _, n := range append(Presets[:len(Presets):len(Presets)], Scenarios...) {
			p := Profile(f, n)
			t.Run(p, func(t *testing.T) {
				t.Parallel()
				out, err := tree.Build(ScenarioDir(p))
				if err != nil {
					t.Fatal(err)
				}
				objs, err := Decode(out)
				if err != nil {
					t.Fatal(err)
				}
				kinds := 0
				for _, o := range objs {
					if strings.HasPrefix(o.APIVersion, gatewayGroup+"/") {
						kinds++
					}
				}
				if kinds == 0 {
					t.Fatal("no Gateway API objects rendered")
				}
				if errs := validateGatewayAPI(t, gatewayAPIValidator(t, channelOf(scenarioOf(p))), objs); len(errs) != 0 {
					t.Errorf("%s channel CRDs: %v", channelOf(scenarioOf(p)), errs)
				}
			})
		}
	}
}

// scenarioOf is the scenario (or preset) of a profile.
func scenarioOf(profile string) string {
	_, name, _ := ParseProfile(profile)
	return name
}

// The retries scenario does need the experimental channel: on the standard CRDs the API server
// would drop its `retry` (an unknown field), which is why `make istio-install` installs the
// experimental ones.
func TestRetriesNeedTheExperimentalChannel(t *testing.T) {
	t.Parallel()
	for _, f := range Flavours[1:] {
		out, err := sharedTree(t).Build(ScenarioDir(Profile(f, "retries")))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		errs := validateGatewayAPI(t, gatewayAPIValidator(t, "standard"), objs)
		if len(errs) == 0 || !strings.Contains(errorsString(errs), "unknown fields [spec.rules[0].retry]") {
			t.Errorf("%s on the standard CRDs: want retry rejected as an unknown field, got %v", Profile(f, "retries"), errs)
		}
	}
}

func errorsString(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error())
		b.WriteString("\n")
	}
	return b.String()
}

// Broken Gateway API objects that decode into the Go types and pass our rules, but break the
// CRDs' schema or CEL rules: the API server would reject them.
func TestCRDValidationRejectsBrokenObjects(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, profile, old, new, want string
	}{
		{"backend timeout longer than the request timeout", "gateway-api-retries",
			"      backendRequest: 1s\n", "      backendRequest: 1s\n      request: 500ms\n",
			"backendRequest timeout cannot be longer than request timeout"},
		{"weight above the maximum", "ambient-weighted-split",
			"    weight: 80\n", "    weight: 1000001\n", "should be less than or equal to 1000000"},
		{"listener hostname with a port", "gateway-api-default",
			"    hostname: client.meshdemo\n", "    hostname: client.meshdemo:80\n", "spec.listeners[0].hostname"},
		{"header name with a space", "ambient-header-routing",
			"      - name: end-user\n", "      - name: end user\n", "name in body should match"},
		{"mirror percent over 100", "gateway-api-mirroring",
			"        percent: 100\n", "        percent: 150\n", "percent in body should be less than or equal to 100"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, err := sharedTree(t).Build(ScenarioDir(c.profile))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(out, []byte(c.old)) {
				t.Fatalf("rendered %s does not contain %q: the case no longer applies", c.profile, c.old)
			}
			objs, err := Decode(bytes.ReplaceAll(out, []byte(c.old), []byte(c.new)))
			if err != nil {
				t.Fatalf("the broken render must still decode, to show the CRDs catch what decoding does not: %v", err)
			}
			errs := validateGatewayAPI(t, gatewayAPIValidator(t, channelOf(scenarioOf(c.profile))), objs)
			if !strings.Contains(errorsString(errs), c.want) {
				t.Errorf("want an error containing %q, got %v", c.want, errs)
			}
		})
	}
}
