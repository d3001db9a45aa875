package matrix

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Image is one published container image: a Go main package built into a FROM-scratch image
// named after the image. The four workloads come from the services module; the load generator
// from loadtest.
type Image struct {
	Name    string // the image's repository name under the release registry: client, ..., loadtest
	Module  string // the Go module's folder, relative to the repository root
	Package string // the main package, relative to Module
	Binary  string // the binary's path inside the image
}

// Images lists the images a release publishes: every workload, then the load generator.
func Images() []Image {
	var out []Image
	for _, w := range workloads {
		out = append(out, Image{Name: w.Name, Module: "services", Package: "./" + w.Name, Binary: "/workload"})
	}
	return append(out, Image{Name: "loadtest", Module: "loadtest", Package: "./cmd/loadtest", Binary: "/loadtest"})
}

// ReleaseFile is the file, in the release's output folder, that build/release writes and the
// bundle render reads: what was pushed where.
const ReleaseFile = "images.json"

// Release is what one `make release` published (ReleaseFile).
type Release struct {
	Registry string          `json:"registry"` // host[:port]/path, as given to make release
	Version  string          `json:"version"`  // the semantic version, v-prefixed
	Revision string          `json:"revision"` // the commit the images were built from
	Created  string          `json:"created"`  // the commit's time, RFC 3339: the images' creation time
	Images   []ReleasedImage `json:"images"`
}

// ReleasedImage is one pushed OCI image index.
type ReleasedImage struct {
	Name       string             `json:"name"`       // Image.Name
	Repository string             `json:"repository"` // <registry>/<name>
	Digest     string             `json:"digest"`     // sha256:<hex> of the image index
	Platforms  []ReleasedPlatform `json:"platforms"`
}

// ReleasedPlatform is one platform's image inside an index.
type ReleasedPlatform struct {
	Platform string `json:"platform"` // os/arch: linux/amd64, linux/arm64
	Digest   string `json:"digest"`   // sha256:<hex> of the platform's image manifest
	Size     int64  `json:"size"`     // bytes to pull: the config and the compressed layers (the release also holds the unpacked size to 15 MiB)
}

// Ref is the image's pull reference by digest: <registry>/<name>@sha256:<hex>.
func (i ReleasedImage) Ref() string { return i.Repository + "@" + i.Digest }

// Image finds a released image by name.
func (r Release) Image(name string) (ReleasedImage, bool) {
	for _, i := range r.Images {
		if i.Name == name {
			return i, true
		}
	}
	return ReleasedImage{}, false
}

var sha256Digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ParseRelease decodes a ReleaseFile and checks it: every image of Images present once, under
// the release registry, each with a sha256 digest and at least one platform.
func ParseRelease(data []byte) (Release, error) {
	var r Release
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Release{}, fmt.Errorf("%s: %w", ReleaseFile, err)
	}
	if r.Registry == "" || strings.Contains(r.Registry, "@") || strings.HasSuffix(r.Registry, "/") {
		return Release{}, fmt.Errorf("%s: registry %q: want host[:port]/path", ReleaseFile, r.Registry)
	}
	if !strings.HasPrefix(r.Version, "v") {
		return Release{}, fmt.Errorf("%s: version %q: want a v-prefixed semantic version", ReleaseFile, r.Version)
	}
	seen := map[string]bool{}
	for _, i := range r.Images {
		if seen[i.Name] {
			return Release{}, fmt.Errorf("%s: image %q listed twice", ReleaseFile, i.Name)
		}
		seen[i.Name] = true
		if i.Repository != r.Registry+"/"+i.Name {
			return Release{}, fmt.Errorf("%s: image %q: repository %q is not %s/%s", ReleaseFile, i.Name, i.Repository, r.Registry, i.Name)
		}
		if !sha256Digest.MatchString(i.Digest) {
			return Release{}, fmt.Errorf("%s: image %q: digest %q is not sha256:<64 hex>", ReleaseFile, i.Name, i.Digest)
		}
		if len(i.Platforms) == 0 {
			return Release{}, fmt.Errorf("%s: image %q has no platforms", ReleaseFile, i.Name)
		}
		for _, p := range i.Platforms {
			if !sha256Digest.MatchString(p.Digest) {
				return Release{}, fmt.Errorf("%s: image %q %s: digest %q is not sha256:<64 hex>", ReleaseFile, i.Name, p.Platform, p.Digest)
			}
		}
	}
	for _, want := range Images() {
		if !seen[want.Name] {
			return Release{}, fmt.Errorf("%s: image %q missing", ReleaseFile, want.Name)
		}
	}
	if len(r.Images) != len(Images()) {
		return Release{}, fmt.Errorf("%s: %d images, want the %d of matrix.Images", ReleaseFile, len(r.Images), len(Images()))
	}
	return r, nil
}

// ReleaseComponentFile is the kustomization.yaml of ReleaseComponent for a release: one
// `images:` entry per released image, from its local name meshdemo/<name> to
// <Repository>@<Digest>. Every image of the release is listed; kustomize leaves an entry that no
// object uses alone (the bundles hold the workloads, not the load generator).
func ReleaseComponentFile(r Release) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated in memory by the bundle render (verify/cmd/render -release, `make release`) from\n"+
		"# %s of meshdemo %s: every image by its registry and digest. Never committed.\n", ReleaseFile, r.Version)
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nimages:\n")
	for _, i := range r.Images {
		fmt.Fprintf(&b, "  - name: %s\n    newName: %q\n    digest: %q\n", LocalImage(i.Name), i.Repository, i.Digest)
	}
	return b.String()
}

// LocalImagePrefix begins the name of every meshdemo image in the Kustomize sources and of the
// images built locally (kind, compose, the container tests).
const LocalImagePrefix = "meshdemo/"

// LocalImage is an image's name in the Kustomize sources, before any component names a
// registry, tag or digest: meshdemo/<name>.
func LocalImage(name string) string { return LocalImagePrefix + name }
