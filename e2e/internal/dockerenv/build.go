package dockerenv

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/testcontainers/testcontainers-go"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// GoTags are the build tags of every image binary, as in build/Dockerfile's GO_TAGS.
const GoTags = "grpcnotrace,nopgxregisterdefaulttypes"

// MaxImageBytes is the size limit every workload image must stay under (15 MiB).
const MaxImageBytes = 15 << 20

// RepoRoot finds the repository root (the folder holding go.work) from the working
// directory of a test, which is its package folder.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "build", "Dockerfile")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.work + build/Dockerfile) not found above the working directory")
		}
		dir = parent
	}
}

// BuildBinary builds one workload the way the images need it: static, stripped, for the
// engine's platform. It returns the binary's bytes.
func BuildBinary(ctx context.Context, root, workload, goos, goarch, outDir string) ([]byte, error) {
	out := filepath.Join(outDir, goos+"_"+goarch, workload)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", GoTags, "-trimpath", "-ldflags=-s -w", "-o", out, "./"+workload)
	cmd.Dir = filepath.Join(root, "services")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s for %s/%s: %w\n%s", workload, goos, goarch, err, b)
	}
	return os.ReadFile(out)
}

// ImageContext is the build context of build/Dockerfile.prebuilt as a tar:
// the Dockerfile and bin/<os>_<arch>/<workload>. Nothing else is sent to the engine.
func ImageContext(dockerfile []byte, workload, goos, goarch string, binary []byte) (*bytes.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, dockerfile},
		{"bin/" + goos + "_" + goarch + "/" + workload, 0o755, binary},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return bytes.NewReader(buf.Bytes()), nil
}

// ImageSpec is one image to build from build/Dockerfile.prebuilt.
type ImageSpec struct {
	Root     string // repository root
	Workload string
	OS, Arch string // the engine's platform
	Repo     string // image repository, e.g. meshdemo/client
	Tag      string
	BinDir   string    // where binaries are built (a temp dir)
	Log      io.Writer // build output; nil discards it
	// Labels are added to the image so that a later run can find and remove it.
	Labels map[string]string
}

// BuildImage builds spec's workload binary and image with testcontainers' builder, which
// talks to the engine's API: no CLI, no `# syntax` frontend, no pull. It returns the
// image reference.
func BuildImage(ctx context.Context, spec ImageSpec) (string, error) {
	dockerfile, err := os.ReadFile(filepath.Join(spec.Root, "build", "Dockerfile.prebuilt"))
	if err != nil {
		return "", err
	}
	bin, err := BuildBinary(ctx, spec.Root, spec.Workload, spec.OS, spec.Arch, spec.BinDir)
	if err != nil {
		return "", err
	}
	archive, err := ImageContext(dockerfile, spec.Workload, spec.OS, spec.Arch, bin)
	if err != nil {
		return "", err
	}
	args := map[string]*string{
		"WORKLOAD":   &spec.Workload,
		"TARGETOS":   &spec.OS,
		"TARGETARCH": &spec.Arch,
	}
	logw := spec.Log
	if logw == nil {
		logw = io.Discard
	}
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", err
	}
	defer provider.Close()
	req := &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		ContextArchive: archive,
		Dockerfile:     "Dockerfile",
		Repo:           spec.Repo,
		Tag:            spec.Tag,
		BuildArgs:      args,
		BuildLogWriter: logw,
		KeepImage:      true,
		BuildOptionsModifier: func(o *build.ImageBuildOptions) {
			o.PullParent = false
			o.Labels = spec.Labels
		},
	}}
	ref, err := provider.BuildImage(ctx, req)
	if err != nil {
		return "", fmt.Errorf("build %s:%s: %w", spec.Repo, spec.Tag, err)
	}
	return ref, nil
}

// ImageName is the repository of a workload's image: meshdemo/<workload>.
func ImageName(workload string) string { return matrix.LocalImage(strings.ToLower(workload)) }
