package matrix

import (
	"encoding/json"
	"strings"
	"testing"
)

func validRelease() Release {
	r := Release{Registry: "127.0.0.1:5000/meshdemo", Version: "v0.0.0-test", Revision: "abc", Created: "2026-12-06T00:00:00Z"}
	for _, im := range Images() {
		r.Images = append(r.Images, ReleasedImage{
			Name: im.Name, Repository: r.Registry + "/" + im.Name, Digest: "sha256:" + strings.Repeat("a", 64),
			Platforms: []ReleasedPlatform{{Platform: "linux/amd64", Digest: "sha256:" + strings.Repeat("b", 64), Size: 1}},
		})
	}
	return r
}

func TestParseRelease(t *testing.T) {
	data, err := json.Marshal(validRelease())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRelease(data)
	if err != nil {
		t.Fatalf("a valid release: %v", err)
	}
	if im, ok := r.Image("user-service"); !ok || im.Ref() != "127.0.0.1:5000/meshdemo/user-service@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("Image(user-service) = %+v, %v", im, ok)
	}
	broken := map[string]func(*Release){
		"no registry":        func(r *Release) { r.Registry = "" },
		"unprefixed version": func(r *Release) { r.Version = "1.0.0" },
		"short digest":       func(r *Release) { r.Images[0].Digest = "sha256:abc" },
		"foreign repository": func(r *Release) { r.Images[1].Repository = "elsewhere/server1" },
		"missing image":      func(r *Release) { r.Images = r.Images[1:] },
		"duplicate image":    func(r *Release) { r.Images[1] = r.Images[0] },
		"no platforms":       func(r *Release) { r.Images[2].Platforms = nil },
		"bad platform digest": func(r *Release) {
			r.Images[3].Platforms[0].Digest = "md5:00"
		},
	}
	for name, breakIt := range broken {
		r := validRelease()
		breakIt(&r)
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRelease(data); err == nil {
			t.Errorf("%s: ParseRelease accepted it", name)
		}
	}
	if _, err := ParseRelease([]byte(`{"registry":"r/x","version":"v1","unknown":1}`)); err == nil {
		t.Error("an unknown field was accepted")
	}
}

func TestImagesAreTheWorkloadsAndTheLoadGenerator(t *testing.T) {
	var names []string
	for _, im := range Images() {
		names = append(names, im.Name)
		if im.Module == "" || !strings.HasPrefix(im.Package, "./") || !strings.HasPrefix(im.Binary, "/") {
			t.Errorf("%+v: incomplete", im)
		}
	}
	want := append(WorkloadNames(), "loadtest")
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("Images() = %v, want %v", names, want)
	}
}

func TestReleaseComponentFile(t *testing.T) {
	r := validRelease()
	r.Images[1].Digest = "sha256:" + strings.Repeat("c", 64)
	got := ReleaseComponentFile(r)
	want := `# Generated in memory by the bundle render (verify/cmd/render -release, ` + "`make release`" + `) from
# images.json of meshdemo v0.0.0-test: every image by its registry and digest. Never committed.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
images:
  - name: meshdemo/client
    newName: "127.0.0.1:5000/meshdemo/client"
    digest: "sha256:` + strings.Repeat("a", 64) + `"
  - name: meshdemo/server1
    newName: "127.0.0.1:5000/meshdemo/server1"
    digest: "sha256:` + strings.Repeat("c", 64) + `"
`
	if !strings.HasPrefix(got, want) {
		t.Errorf("ReleaseComponentFile starts:\n%s\nwant:\n%s", got, want)
	}
	for _, im := range Images() {
		if !strings.Contains(got, "  - name: meshdemo/"+im.Name+"\n") {
			t.Errorf("image %s is not pinned", im.Name)
		}
	}
}

func TestBundleName(t *testing.T) {
	for profile, want := range map[string]string{
		"default": "meshdemo-default.yaml", "gateway-api-canary": "meshdemo-gateway-api-canary.yaml", "ambient-retries": "meshdemo-ambient-retries.yaml",
	} {
		if got := BundleName(profile); got != want {
			t.Errorf("BundleName(%q) = %q, want %q", profile, got, want)
		}
	}
}
