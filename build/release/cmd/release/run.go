package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/meshdemo/meshdemo/build/release/image"
	"github.com/meshdemo/meshdemo/build/release/sbom"
	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// MaxSize is the largest a release image may be per platform, both to pull (config and
// compressed layers) and unpacked.
const MaxSize = 15 << 20

// Timeouts: a cold compile of the services module takes minutes on a busy machine; a push of a
// few MiB takes seconds, a slow registry gets minutes.
const (
	compileTimeout = 20 * time.Minute
	pushTimeout    = 5 * time.Minute
)

// semver is a v-prefixed semantic version (semver.org's grammar, without build metadata's
// leading-zero subtleties mattering for a tag): v1.2.3, v0.0.0-test, v1.0.0-rc.1+build.5.
var semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

type config struct {
	root, registry, version, out string
	// goCmd is the go command that compiles the images' binaries (GO, default go).
	goCmd string
	// targets are the images to build; matrix.Images() unless a test narrows them.
	targets []matrix.Image
	// transport is the registry transport; remote's default with timeouts unless a test sets it.
	transport http.RoundTripper
	// maxSize is the size limit per platform image (MaxSize) unless a test lowers it.
	maxSize int64
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.root, "root", "", "the repository root (default: the git top level of the working directory)")
	fs.StringVar(&c.registry, "registry", "", "where to push: host[:port]/path, e.g. ghcr.io/meshdemo (required)")
	fs.StringVar(&c.version, "version", "", "the release's version: v-prefixed semver, e.g. v1.2.3 (required)")
	fs.StringVar(&c.out, "out", "", "the release folder: images.json and sbom/ are written there (required)")
	if err := fs.Parse(args); err != nil {
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if !semver.MatchString(c.version) {
		return c, usageError{fmt.Errorf("-version %q: want a v-prefixed semantic version such as v1.2.3 or v0.0.0-test", c.version)}
	}
	if c.registry == "" || strings.HasSuffix(c.registry, "/") || strings.ContainsAny(c.registry, "@: ") && !hostPort(c.registry) {
		return c, usageError{fmt.Errorf("-registry %q: want host[:port]/path, e.g. ghcr.io/meshdemo or 127.0.0.1:5000/meshdemo", c.registry)}
	}
	if _, err := name.NewRepository(c.registry+"/client", name.StrictValidation); err != nil {
		return c, usageError{fmt.Errorf("-registry %q: want host[:port]/path: %w", c.registry, err)}
	}
	if c.out == "" {
		return c, usageError{errors.New("-out is required: the folder for images.json and sbom/")}
	}
	return c, nil
}

// hostPort reports whether the only colon in s is a registry port (host:port/path), not a tag.
func hostPort(s string) bool {
	if strings.ContainsAny(s, "@ ") || strings.Count(s, ":") != 1 {
		return false
	}
	host, _, _ := strings.Cut(s, "/")
	_, port, err := net.SplitHostPort(host)
	if err != nil {
		return false
	}
	_, err = strconv.Atoi(port)
	return err == nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	c.goCmd = getenv("GO")
	c.targets = matrix.Images()
	c.maxSize = MaxSize
	return release(ctx, c, stdout)
}

// commit is the revision the images are built from and its time, the only time they carry.
func commit(ctx context.Context, root string) (string, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", root, "log", "-1", "--format=%H %ct").Output()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git log in %s: %w", root, err)
	}
	rev, secs, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	n, err := strconv.ParseInt(secs, 10, 64)
	if !ok || err != nil || len(rev) < 40 {
		return "", time.Time{}, fmt.Errorf("git log in %s: unexpected %q", root, out)
	}
	return rev, time.Unix(n, 0).UTC(), nil
}

// changed is git status --porcelain of the tracked files: what the images would hold that the
// commit does not.
func changed(ctx context.Context, root string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return "", fmt.Errorf("git status in %s: %w", root, err)
	}
	return string(out), nil
}

func gitRoot(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("-root not given and git rev-parse failed: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// defaultTransport is remote's transport with bounds on connecting and on waiting for a
// response's headers; the per-image context bounds the whole push.
func defaultTransport() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	return t
}

// describe is the image's description label: the workloads' as in build/Dockerfile.
func describe(im matrix.Image) string {
	if workload(im) {
		return "meshdemo " + im.Name + ": Go reference workload for Istio demos"
	}
	return "meshdemo " + im.Name + ": load generator for the meshdemo workloads"
}

// workload reports whether the image is one of the workloads (the services module), whose
// runtime build/Dockerfile declares; the load generator is a plain command.
func workload(im matrix.Image) bool { return im.Module == "services" }

// runtimeOf is build/Dockerfile's runtime half for the workloads: public API and probes on
// 8080, admin on 9090, the binary's own health check, SIGTERM to drain.
func runtimeOf(im matrix.Image) image.Runtime {
	if !workload(im) {
		return image.Runtime{}
	}
	return image.Runtime{
		ExposedPorts: []string{"8080/tcp", "9090/tcp"},
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", im.Binary, "healthcheck"},
			Interval:    5 * time.Second,
			Timeout:     3 * time.Second,
			StartPeriod: 10 * time.Second,
			Retries:     3,
		},
		StopSignal: "SIGTERM",
	}
}

func release(ctx context.Context, c config, stdout io.Writer) error {
	if c.root == "" {
		root, err := gitRoot(ctx)
		if err != nil {
			return err
		}
		c.root = root
	}
	root, err := filepath.Abs(c.root)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(c.out)
	if err != nil {
		return err
	}
	if c.transport == nil {
		c.transport = defaultTransport()
	}
	rev, created, err := commit(ctx, root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "sbom"), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "meshdemo-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if dirty, err := changed(ctx, root); err != nil {
		return err
	} else if dirty != "" {
		fmt.Fprintf(stdout, "warning: uncommitted changes in %s: the images are built from them but labelled %s:\n%s", root, rev, dirty)
	}
	rel := matrix.Release{Registry: c.registry, Version: c.version, Revision: rev, Created: created.Format(time.RFC3339)}
	fmt.Fprintf(stdout, "release %s of %s (%s) to %s\n", c.version, rev, rel.Created, c.registry)
	for _, im := range c.targets {
		start := time.Now()
		ri, unpacked, doc, err := buildAndPush(ctx, c, root, tmp, im, rev, created)
		if err != nil {
			return fmt.Errorf("%s: %w", im.Name, err)
		}
		if err := os.WriteFile(filepath.Join(out, "sbom", im.Name+".spdx.json"), doc, 0o644); err != nil {
			return err
		}
		rel.Images = append(rel.Images, ri)
		fmt.Fprintf(stdout, "%s %s (%s)\n", im.Name, ri.Ref(), time.Since(start).Round(time.Millisecond))
		for i, p := range ri.Platforms {
			fmt.Fprintf(stdout, "  %-11s %s %d bytes (%.2f MiB) to pull, %.2f MiB unpacked\n", p.Platform, p.Digest, p.Size, float64(p.Size)/(1<<20), float64(unpacked[i])/(1<<20))
		}
	}
	data, err := json.MarshalIndent(rel, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if len(c.targets) == len(matrix.Images()) {
		if _, err := matrix.ParseRelease(data); err != nil {
			return fmt.Errorf("the release written would not parse: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(out, matrix.ReleaseFile), data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(out, matrix.ReleaseFile), filepath.Join(out, "sbom"))
	return nil
}

// buildAndPush compiles one image's binary per platform, assembles the images and their index,
// pushes the index (and with it each platform's image) by digest, tags it with the version, and
// returns what images.json records, each platform's unpacked size and the image's SBOM.
func buildAndPush(ctx context.Context, c config, root, tmp string, im matrix.Image, rev string, created time.Time) (matrix.ReleasedImage, []int64, []byte, error) {
	repo, err := name.NewRepository(c.registry+"/"+im.Name, name.StrictValidation)
	if err != nil {
		return matrix.ReleasedImage{}, nil, nil, err
	}
	meta := image.Meta{Name: im.Name, Description: describe(im), Version: c.version, Revision: rev, Created: created}
	build := image.Build{Go: c.goCmd, ModuleDir: filepath.Join(root, filepath.FromSlash(im.Module)), Package: im.Package}
	var imgs []v1.Image
	var doc []byte
	platforms := image.Platforms()
	for _, p := range platforms {
		bin := filepath.Join(tmp, im.Name+"-"+p.OS+"-"+p.Architecture)
		cctx, cancel := context.WithTimeout(ctx, compileTimeout)
		err := image.Compile(cctx, build, p, bin)
		cancel()
		if err != nil {
			return matrix.ReleasedImage{}, nil, nil, err
		}
		img, err := image.Image(bin, im.Binary, p, runtimeOf(im), meta)
		if err != nil {
			return matrix.ReleasedImage{}, nil, nil, err
		}
		imgs = append(imgs, img)
		if doc == nil {
			// Every platform links the same modules: one document per image, from the first.
			d, err := sbom.FromBinary(bin, sbom.Image{Name: im.Name, Version: c.version, Revision: rev, Created: created})
			if err != nil {
				return matrix.ReleasedImage{}, nil, nil, err
			}
			if doc, err = sbom.JSON(d); err != nil {
				return matrix.ReleasedImage{}, nil, nil, err
			}
		}
	}
	idx, err := image.Index(imgs, platforms)
	if err != nil {
		return matrix.ReleasedImage{}, nil, nil, err
	}
	digest, err := idx.Digest()
	if err != nil {
		return matrix.ReleasedImage{}, nil, nil, err
	}
	ri := matrix.ReleasedImage{Name: im.Name, Repository: repo.String(), Digest: digest.String()}
	var unpacked []int64
	for i, img := range imgs {
		d, err := img.Digest()
		if err != nil {
			return matrix.ReleasedImage{}, nil, nil, err
		}
		size, err := image.PullSize(img)
		if err != nil {
			return matrix.ReleasedImage{}, nil, nil, err
		}
		u, err := image.UnpackedSize(img)
		if err != nil {
			return matrix.ReleasedImage{}, nil, nil, err
		}
		unpacked = append(unpacked, u)
		plat := image.PlatformString(platforms[i])
		// The limit holds both for what a node pulls and for what it unpacks.
		for _, s := range []struct {
			what string
			n    int64
		}{{"to pull", size}, {"unpacked", u}} {
			if s.n > c.maxSize {
				return matrix.ReleasedImage{}, nil, nil, fmt.Errorf("%s: %d bytes (%.2f MiB) %s, over the limit of %d bytes (%.2f MiB)", plat, s.n, float64(s.n)/(1<<20), s.what, c.maxSize, float64(c.maxSize)/(1<<20))
			}
		}
		ri.Platforms = append(ri.Platforms, matrix.ReleasedPlatform{Platform: plat, Digest: d.String(), Size: size})
	}
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	opts := []remote.Option{remote.WithContext(pctx), remote.WithTransport(c.transport), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if err := remote.WriteIndex(repo.Digest(digest.String()), idx, opts...); err != nil {
		return matrix.ReleasedImage{}, nil, nil, fmt.Errorf("push %s@%s: %w", repo, digest, err)
	}
	if err := remote.Tag(repo.Tag(c.version), idx, opts...); err != nil {
		return matrix.ReleasedImage{}, nil, nil, fmt.Errorf("tag %s:%s: %w", repo, c.version, err)
	}
	return ri, unpacked, doc, nil
}
