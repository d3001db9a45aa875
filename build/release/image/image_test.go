package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var commitTime = time.Date(2026, 11, 3, 14, 15, 16, 0, time.UTC)

func meta() Meta {
	return Meta{Name: "server2", Description: "meshdemo server2", Version: "v1.2.3", Revision: "0123456789abcdef0123456789abcdef01234567", Created: commitTime}
}

func writeBinary(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t *testing.T, bin string, p v1.Platform, rt Runtime) v1.Image {
	t.Helper()
	img, err := Image(bin, "/workload", p, rt, meta())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestLayerHoldsOnlyTheBinary(t *testing.T) {
	t.Parallel()
	gz, err := Layer([]byte("ELF..."), "/workload", commitTime)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header carries mtime %v / name %q, want neither", zr.ModTime, zr.Name)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name != "workload" || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(commitTime) {
			t.Errorf("entry %q: type %c mode %o uid %d gid %d uname %q gname %q mtime %v; want workload, regular, 0755, root, %v", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, commitTime)
		}
		body, _ := io.ReadAll(tr)
		if string(body) != "ELF..." {
			t.Errorf("content %q", body)
		}
	}
	if !slices.Equal(names, []string{"workload"}) {
		t.Errorf("layer entries %v, want only workload", names)
	}
	again, err := Layer([]byte("ELF..."), "/workload", commitTime)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gz, again) {
		t.Error("the same binary gave two different layers")
	}
}

func TestImageConfig(t *testing.T) {
	t.Parallel()
	hc := &v1.HealthConfig{Test: []string{"CMD", "/workload", "healthcheck"}, Interval: 5 * time.Second, Retries: 3}
	img := build(t, writeBinary(t, "arm binary"), Platforms()[1], Runtime{ExposedPorts: []string{"8080/tcp", "9090/tcp"}, Healthcheck: hc, StopSignal: "SIGTERM"})
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("media types: manifest %s config %s layers %v, want OCI, one gzip layer", m.MediaType, m.Config.MediaType, m.Layers)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" || cf.Variant != "v8" {
		t.Errorf("platform %s/%s/%s, want linux/arm64/v8", cf.OS, cf.Architecture, cf.Variant)
	}
	if !cf.Created.Time.Equal(commitTime) {
		t.Errorf("created %v, want the commit time %v", cf.Created, commitTime)
	}
	if len(cf.History) != 1 || !cf.History[0].Created.Time.Equal(commitTime) {
		t.Errorf("history %+v, want one entry at the commit time", cf.History)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/workload"}) || len(c.Cmd) != 0 || len(c.Env) != 0 {
		t.Errorf("user %q entrypoint %v cmd %v env %v", c.User, c.Entrypoint, c.Cmd, c.Env)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, hc.Test) || c.StopSignal != "SIGTERM" {
		t.Errorf("healthcheck %+v stop signal %q", c.Healthcheck, c.StopSignal)
	}
	want := map[string]string{
		"org.opencontainers.image.title":    "meshdemo-server2",
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.created":  "2026-11-03T14:15:16Z",
		"org.opencontainers.image.source":   "https://github.com/meshdemo/meshdemo",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.vendor":   "meshdemo",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if len(c.Labels) != 9 {
		t.Errorf("%d labels, want the 9 OCI ones: %v", len(c.Labels), c.Labels)
	}
}

func TestNoRuntimeMeansNoPortsNoHealthcheck(t *testing.T) {
	t.Parallel()
	cf, err := build(t, writeBinary(t, "loadtest"), Platforms()[0], Runtime{}).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.ExposedPorts != nil || cf.Config.Healthcheck != nil || cf.Variant != "" {
		t.Errorf("ports %v healthcheck %v variant %q, want none", cf.Config.ExposedPorts, cf.Config.Healthcheck, cf.Variant)
	}
}

func TestIndexIsReproducibleAndListsBothPlatforms(t *testing.T) {
	t.Parallel()
	digest := func(binary string) v1.Hash {
		bin := writeBinary(t, binary)
		var imgs []v1.Image
		for _, p := range Platforms() {
			imgs = append(imgs, build(t, bin, p, Runtime{}))
		}
		idx, err := Index(imgs, Platforms())
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.MediaType != types.OCIImageIndex {
			t.Errorf("index media type %s", im.MediaType)
		}
		var plats []string
		for _, d := range im.Manifests {
			if d.ArtifactType != "" || d.MediaType != types.OCIManifestSchema1 {
				t.Errorf("index entry %s: media type %s, artifactType %q; want an OCI image manifest and no artifactType", d.Digest, d.MediaType, d.ArtifactType)
			}
			plats = append(plats, d.Platform.OS+"/"+d.Platform.Architecture+"/"+d.Platform.Variant)
		}
		if !slices.Equal(plats, []string{"linux/amd64/", "linux/arm64/v8"}) {
			t.Errorf("index platforms %v", plats)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b, other := digest("same"), digest("same"), digest("different")
	if a != b {
		t.Errorf("the same binary gave index digests %s and %s", a, b)
	}
	if a == other {
		t.Errorf("different binaries gave the same index digest %s", a)
	}
}

func TestImageRejectsBadInput(t *testing.T) {
	t.Parallel()
	bin := writeBinary(t, "x")
	for name, tc := range map[string]struct {
		bin, target string
		m           Meta
	}{
		"relative target": {bin, "workload", meta()},
		"unclean target":  {bin, "/a/../workload", meta()},
		"no time":         {bin, "/workload", Meta{Name: "x"}},
		"missing binary":  {bin + ".missing", "/workload", meta()},
	} {
		if _, err := Image(tc.bin, tc.target, Platforms()[0], Runtime{}, tc.m); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Index(nil, Platforms()); err == nil {
		t.Error("index of no images: no error")
	}
}

func TestPullSizeIsConfigPlusLayers(t *testing.T) {
	t.Parallel()
	img := build(t, writeBinary(t, "some bytes"), Platforms()[0], Runtime{})
	raw, _ := img.RawConfigFile()
	layers, _ := img.Layers()
	lsize, _ := layers[0].Size()
	got, err := PullSize(img)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(raw)) + lsize; got != want {
		t.Errorf("pull size %d, want config %d + layer %d", got, len(raw), lsize)
	}
	unpacked, err := UnpackedSize(img)
	if err != nil {
		t.Fatal(err)
	}
	// A tar of one small file: a 512-byte header, the file padded to 512, two zero blocks.
	if unpacked != 2048 {
		t.Errorf("unpacked size %d, want 4 tar blocks", unpacked)
	}
}
