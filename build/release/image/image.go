package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Platforms are the platforms every release image is built for, in the order the index lists
// them.
func Platforms() []v1.Platform {
	return []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
	}
}

// PlatformString is os/arch, the form images.json and `docker --platform` use.
func PlatformString(p v1.Platform) string { return p.OS + "/" + p.Architecture }

// GoTags are the build tags of the Makefile's GO_TAGS and build/Dockerfile's GO_TAGS: without
// them user-service is over the 15 MiB limit. Packages that do not use them ignore them.
const GoTags = "grpcnotrace,nopgxregisterdefaulttypes"

// Build is what Compile needs: a main package inside a Go module folder.
type Build struct {
	Go        string // the go command ("go" when empty)
	ModuleDir string // the module's folder (absolute)
	Package   string // the main package, relative to ModuleDir ("./client")
}

// Compile builds b for the platform into out, statically, with the flags that make the binary
// reproducible (see the package comment). The go command's output is in the error.
func Compile(ctx context.Context, b Build, p v1.Platform, out string) error {
	goCmd := b.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false", "-tags", GoTags,
		"-ldflags=-s -w -buildid=", "-o", out, b.Package)
	cmd.Dir = b.ModuleDir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOWORK=off",
		"GOFLAGS=", "GOAMD64=v1", "GOARM64=v8.0", "GOEXPERIMENT=")
	cmd.WaitDelay = 5 * time.Second
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (%s) in %s: %w\n%s", b.Package, PlatformString(p), b.ModuleDir, err, msg)
	}
	return nil
}

// Runtime is how a container of the image runs, beyond the entrypoint: what build/Dockerfile
// declares for the workloads. The zero value (the load generator) exposes nothing and has no
// health check.
type Runtime struct {
	ExposedPorts []string         // "8080/tcp"
	Healthcheck  *v1.HealthConfig // nil: none
	StopSignal   string
}

// Meta is what the image says about itself: labels, creation time.
type Meta struct {
	Name        string    // the image's name (client, ..., loadtest)
	Description string    // org.opencontainers.image.description
	Version     string    // the release version (v1.2.3)
	Revision    string    // the commit
	Created     time.Time // the commit's time: the only time in the image
}

// Source is the project's repository, the images' source and url labels.
const Source = "https://github.com/meshdemo/meshdemo"

// Labels are the OCI annotations of the image config.
func (m Meta) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "meshdemo-" + m.Name,
		"org.opencontainers.image.description": m.Description,
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.url":         Source,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.vendor":      "meshdemo",
	}
}

// User is the image's user: the same non-root id as build/Dockerfile and compose.yaml.
const User = "65532:65532"

// Image assembles one platform's image: FROM scratch, one layer holding only binary (the file
// at bin on disk) at the path target, OCI media types.
func Image(bin, target string, p v1.Platform, rt Runtime, m Meta) (v1.Image, error) {
	if !path.IsAbs(target) || path.Clean(target) != target {
		return nil, fmt.Errorf("binary path %q: want a clean absolute path", target)
	}
	if m.Created.IsZero() {
		return nil, errors.New("image: no creation time (the commit's time)")
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layerBytes, err := Layer(data, target, m.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: m.Created.UTC()}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: fmt.Sprintf("COPY %s %s # go build -trimpath -tags %s (%s)", path.Base(target), target, GoTags, PlatformString(p)),
			Comment:   "meshdemo build/release",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config = v1.Config{
		User:        User,
		Entrypoint:  []string{target},
		Labels:      m.Labels(),
		Healthcheck: rt.Healthcheck,
		StopSignal:  rt.StopSignal,
	}
	if len(rt.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range rt.ExposedPorts {
			cf.Config.ExposedPorts[port] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// Layer is the gzipped tar of one file, the binary: mode 0755, owned by root, modified at mtime
// (the commit's time), nothing else in the archive. Same input, same bytes.
func Layer(binary []byte, target string, mtime time.Time) ([]byte, error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(target, "/"),
		Mode:     0o755,
		Size:     int64(len(binary)),
		ModTime:  mtime.UTC().Truncate(time.Second),
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	// The header stays empty: no file name, ModTime zero (written as 0), OS byte fixed by the
	// package.
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}

// Index is the OCI image index over one image per platform, in the order given.
func Index(images []v1.Image, platforms []v1.Platform) (v1.ImageIndex, error) {
	if len(images) != len(platforms) || len(images) == 0 {
		return nil, fmt.Errorf("index: %d images for %d platforms", len(images), len(platforms))
	}
	var adds []mutate.IndexAddendum
	for i, img := range images {
		p := platforms[i]
		adds = append(adds, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// UnpackedSize is the image's layers uncompressed: what it takes on a node's disk.
func UnpackedSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range layers {
		size, err := partial.UncompressedSize(l)
		if err != nil {
			return 0, err
		}
		n += size
	}
	return n, nil
}

// PullSize is what a pull of the image transfers: its config and its compressed layers (the
// manifest aside). The release's 15 MiB limit counts this and UnpackedSize.
func PullSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// plainImage is an image whose index descriptor carries no artifactType. go-containerregistry
// otherwise copies the config's media type there; the OCI image spec meant that field for
// artifacts, and the indexes docker buildx writes for images leave it out.
type plainImage struct{ v1.Image }

// ArtifactType is empty: an image, not an artifact.
func (plainImage) ArtifactType() (string, error) { return "", nil }
