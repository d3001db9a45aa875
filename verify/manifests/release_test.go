package manifests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"sigs.k8s.io/yaml"
)

// testRelease is a fabricated release, the renderer's input as build/release writes it: every
// image of matrix.Images under a registry with a port (which must not read as a tag), each with a
// digest of its own, made here.
func testRelease() matrix.Release {
	r := matrix.Release{Registry: "registry.test:5000/meshdemo", Version: "v0.0.0-test", Revision: "0123abc", Created: "2026-12-06T00:00:00Z"}
	for _, im := range matrix.Images() {
		sum := sha256.Sum256([]byte("index of " + im.Name))
		d := "sha256:" + hex.EncodeToString(sum[:])
		r.Images = append(r.Images, matrix.ReleasedImage{
			Name: im.Name, Repository: r.Registry + "/" + im.Name, Digest: d,
			Platforms: []matrix.ReleasedPlatform{{Platform: "linux/amd64", Digest: d, Size: 1}},
		})
	}
	return r
}

// The fabricated release is one ParseRelease accepts, so the tests below feed the renderer
// what it gets in production.
func TestTestReleaseIsValid(t *testing.T) {
	t.Parallel()
	data, err := yaml.Marshal(testRelease())
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := matrix.ParseRelease(js); err != nil {
		t.Fatal(err)
	}
}

// objectKey names an object across two renders: apiVersion, kind, namespace and name.
func objectKey(o Object) string {
	return fmt.Sprintf("%s %s", o.Kind, o.ID())
}

// kindOnly is what only kind needs, as the issue states it; applied to a kind render's object it
// must give the bundle's object exactly. It returns what it changed, counted.
type kindOnly struct{ images, neverPolicies, nodePortOverlays int }

func (k *kindOnly) strip(t *testing.T, obj map[string]any, r matrix.Release) {
	t.Helper()
	switch obj["kind"] {
	case "Deployment", "StatefulSet", "Job":
		podSpec, _ := dig(obj, "spec", "template", "spec").(map[string]any)
		for _, field := range []string{"initContainers", "containers"} {
			cs, _ := podSpec[field].([]any)
			for _, c := range cs {
				c := c.(map[string]any)
				if name, ok := strings.CutPrefix(c["image"].(string), "meshdemo/"); ok {
					name, tagged := strings.CutSuffix(name, ":dev")
					im, found := r.Image(name)
					if !tagged || !found {
						t.Errorf("%v: image %v is not meshdemo/<image>:dev of a released image", obj["metadata"], c["image"])
						continue
					}
					c["image"] = im.Ref()
					k.images++
				}
				if c["imagePullPolicy"] == "Never" {
					delete(c, "imagePullPolicy")
					k.neverPolicies++
				}
			}
		}
	case "ConfigMap":
		if dig(obj, "metadata", "name") != "meshdemo-gateway-options" {
			return
		}
		data := dig(obj, "data").(map[string]any)
		if _, ok := data["service"]; ok {
			delete(data, "service")
			k.nodePortOverlays++
		}
	}
}

func dig(obj map[string]any, path ...string) any {
	var v any = obj
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// byKey decodes a render strictly, then each object into a plain map, by objectKey.
func byKey(t *testing.T, stream []byte) (map[string]map[string]any, []string) {
	t.Helper()
	objs, err := Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	var order []string
	for _, o := range objs {
		var m map[string]any
		if err := yaml.Unmarshal(o.YAML, &m); err != nil {
			t.Fatal(err)
		}
		k := objectKey(o)
		if _, dup := out[k]; dup {
			t.Fatalf("%s rendered twice", k)
		}
		out[k] = m
		order = append(order, k)
	}
	return out, order
}

// The promise, for every profile: a bundle holds the same objects as the scenario's kind
// render, and differs from it in exactly what only kind needs: each meshdemo image
// (meshdemo/<image>:dev there, <registry>/<image>@sha256:<digest> of the release here), the pull
// policy Never (gone), and in the Gateway API flavours the ingress's fixed node port (the
// `service` overlay of the ConfigMap meshdemo-gateway-options, gone). Nothing else: every other
// field of every object is equal, tracing included.
func TestBundlesDifferFromKindRendersOnlyInWhatKindNeeds(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	r := testRelease()
	for _, profile := range matrix.Profiles() {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			f, _, err := matrix.ParseProfile(profile)
			if err != nil {
				t.Fatal(err)
			}
			kindOut, err := render(t, tree, profile)
			if err != nil {
				t.Fatal(err)
			}
			bundleOut, err := render(t, tree, "bundle:"+profile)
			if err != nil {
				t.Fatal(err)
			}
			kindObjs, kindOrder := byKey(t, kindOut)
			bundleObjs, bundleOrder := byKey(t, bundleOut)
			if !reflect.DeepEqual(kindOrder, bundleOrder) {
				t.Fatalf("objects differ:\nkind:   %v\nbundle: %v", kindOrder, bundleOrder)
			}
			var k kindOnly
			for _, key := range kindOrder {
				want := kindObjs[key]
				k.strip(t, want, r)
				if got := bundleObjs[key]; !reflect.DeepEqual(got, want) {
					wantYAML, _ := yaml.Marshal(want)
					gotYAML, _ := yaml.Marshal(got)
					t.Errorf("%s: the bundle differs from the kind render beyond what only kind needs.\nbundle:\n%s\nkind render without it:\n%s", key, gotYAML, wantYAML)
				}
			}
			// Each difference is there (the comparison above would also pass if the kind
			// render had lost what kind needs).
			if k.images == 0 || k.neverPolicies != k.images {
				t.Errorf("%d meshdemo images and %d pull policies Never in the kind render, want as many, at least one", k.images, k.neverPolicies)
			}
			if want := map[bool]int{true: 1, false: 0}[f.GatewayAPIRoutes()]; k.nodePortOverlays != want {
				t.Errorf("%d node-port overlays in the kind render, want %d (flavour %s)", k.nodePortOverlays, want, f)
			}
		})
	}
}

var (
	// imageLine is every image reference in a rendered stream.
	imageLine = regexp.MustCompile(`(?m)^\s*(?:- )?image: (\S+)$`)
	// byDigest is a reference by digest only: repository@sha256:<64 hex>, no tag.
	byDigest = regexp.MustCompile(`^[^:@]+(?::[0-9]+)?(?:/[^:@]+)+@sha256:[0-9a-f]{64}$`)
)

// In every bundle, read as text (what kubectl gets): each meshdemo image is the release's, by
// digest and without a tag; nothing is tagged :dev; no pull policy is Never. PostgreSQL, the one
// third-party image, keeps its pinned tag (rules: backingServiceProblems).
func TestEveryBundleNamesImagesByDigest(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	r := testRelease()
	refs := map[string]bool{}
	for _, im := range r.Images {
		refs[im.Ref()] = true
	}
	for _, profile := range matrix.Profiles() {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			out, err := render(t, tree, "bundle:"+profile)
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{":dev", "imagePullPolicy: Never", "nodePort:"} {
				if strings.Contains(string(out), bad) {
					t.Errorf("bundle contains %q", bad)
				}
			}
			images := imageLine.FindAllStringSubmatch(string(out), -1)
			if len(images) == 0 {
				t.Fatal("no image in the bundle")
			}
			own := 0
			for _, m := range images {
				ref := m[1]
				if strings.HasPrefix(ref, "postgres:") {
					continue
				}
				own++
				if !byDigest.MatchString(ref) || !refs[ref] {
					t.Errorf("image %s: want one of the release's <repository>@sha256:<digest>", ref)
				}
			}
			if own == 0 {
				t.Error("no meshdemo image in the bundle")
			}
		})
	}
}

// The bundle rules (Options.Release) fail where they should: a kind render checked as a bundle
// breaks each of them, a bundle checked as a kind render breaks the node-port rule, and a bundle
// of another release, or one naming an image by tag, is rejected.
func TestBundleRulesRejectWhatOnlyKindNeeds(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	r := testRelease()
	decode := func(t *testing.T, target string) []Object {
		t.Helper()
		out, err := render(t, tree, target)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	wantAll := func(t *testing.T, err error, wants ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want %q", wants)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error lacks %q:\n%v", w, err)
			}
		}
	}
	t.Run("kind render as a bundle", func(t *testing.T) {
		t.Parallel()
		err := Check(decode(t, "gateway-api-canary"), Options{Flavour: matrix.GatewayAPI, Release: &r})
		wantAll(t, err,
			`Deployment server1-v2: container server1: image "meshdemo/server1:dev" is a local name`,
			"Deployment client-v1: container client: imagePullPolicy Never",
			"ConfigMap istio-ingress/meshdemo-gateway-options: service overlay sets type NodePort: a render for any cluster keeps Istio's default Service type",
			"service overlay pins port http to nodePort 30080")
	})
	t.Run("bundle as a kind render", func(t *testing.T) {
		t.Parallel()
		o := options(t, "ambient-default")
		err := Check(decode(t, "bundle:ambient-default"), o)
		wantAll(t, err, "ConfigMap istio-ingress/meshdemo-gateway-options: no `service` overlay")
	})
	t.Run("bundle of another release", func(t *testing.T) {
		t.Parallel()
		other := testRelease()
		other.Images[2].Digest = "sha256:" + strings.Repeat("0", 64)
		err := Check(decode(t, "bundle:canary"), Options{Flavour: matrix.Sidecar, Release: &other})
		wantAll(t, err, fmt.Sprintf(`image %q, want the release's %s`, r.Images[2].Ref(), other.Images[2].Ref()))
	})
	t.Run("image by tag", func(t *testing.T) {
		t.Parallel()
		out, err := render(t, tree, "bundle:default")
		if err != nil {
			t.Fatal(err)
		}
		tagged := strings.ReplaceAll(string(out), r.Images[0].Ref(), r.Images[0].Repository+":v0.0.0-test")
		if tagged == string(out) {
			t.Fatal("the client's image is not in the bundle")
		}
		objs, err := Decode([]byte(tagged))
		if err != nil {
			t.Fatal(err)
		}
		err = Check(objs, Options{Flavour: matrix.Sidecar, Release: &r})
		wantAll(t, err, fmt.Sprintf(`image "%s:v0.0.0-test", want the release's %s`, r.Images[0].Repository, r.Images[0].Ref()))
	})
}

// Tree.Bundle, what cmd/render -release calls, refuses a bundle that breaks a rule, naming it.
func TestTreeBundleChecks(t *testing.T) {
	t.Parallel()
	tree := loadTree(t)
	r := testRelease()
	if _, err := tree.Bundle(r, "ambient-retries"); err != nil {
		t.Fatalf("a valid bundle: %v", err)
	}
	orig, err := tree.Read("deploy/base/server2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const old = "          image: meshdemo/server2\n"
	if !strings.Contains(string(orig), old) {
		t.Fatalf("deploy/base/server2.yaml lacks %q: the case no longer applies", old)
	}
	if err := tree.Write("deploy/base/server2.yaml", []byte(strings.Replace(string(orig), old, old+"          imagePullPolicy: Never\n", 1))); err != nil {
		t.Fatal(err)
	}
	_, err = tree.Bundle(r, "ambient-retries")
	if err == nil || !strings.Contains(err.Error(), "bundle ambient-retries: rules: ") || !strings.Contains(err.Error(), "Deployment server2-v1: container server2: imagePullPolicy Never") {
		t.Fatalf("err %v, want the bundle refused for its pull policy", err)
	}
	if _, err := tree.Bundle(r, "nope"); err == nil || !strings.Contains(err.Error(), `unknown profile "nope"`) {
		t.Fatalf("err %v, want an unknown profile", err)
	}
}
