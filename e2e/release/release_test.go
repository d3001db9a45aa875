package release

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"github.com/meshdemo/meshdemo/e2e/internal/dockerenv"
)

// version is the release's version in this test, as the acceptance command names it.
const version = "v0.0.0-test"

// tools are the programs the round trip runs, found once.
type tools struct {
	root, cosign, registry string
	compose                []string
}

// need skips the test when a prerequisite is missing, saying which, or fails it under CI=true:
// CI runs make test-release, which installs and starts all of them.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("release round trip cannot run: %s: %v (make test-release installs and starts it)", what, err)
	if os.Getenv(dockerenv.EnvCI) == "true" {
		t.Fatal(msg + "; CI=true: failing instead of skipping")
	}
	t.Skip(msg)
}

func findTools(t *testing.T) tools {
	t.Helper()
	root, err := dockerenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dockerenv.Require(t, dockerenv.Probe(context.Background()))
	tl := tools{root: root}
	tl.registry, err = exec.LookPath("docker-registry")
	need(t, "docker-registry (Debian package docker-registry)", err)
	tl.cosign = os.Getenv("COSIGN")
	if tl.cosign == "" {
		tl.cosign = filepath.Join(root, "bin", "cosign")
	}
	_, err = os.Stat(tl.cosign)
	need(t, "cosign (make bin/cosign)", err)
	_, err = os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64")
	need(t, "qemu-aarch64 binfmt entry (Debian package qemu-user-static)", err)
	if exec.Command("docker", "compose", "version").Run() == nil {
		tl.compose = []string{"docker", "compose"}
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		tl.compose = []string{"docker-compose"}
	} else {
		need(t, "docker compose or docker-compose", err)
	}
	return tl
}

// run runs a command and returns its combined output; a failure is returned, not fatal, so
// that the checks that expect one can assert it.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// cleanEnv is the test's environment without the calling make's flags: the nested
// `make release` must not join the outer make's jobserver or inherit its variables.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "MAKEFLAGS" || k == "MAKELEVEL" || k == "MFLAGS" || k == "MAKEOVERRIDES" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// mustRun is run, failing the test on an error.
func mustRun(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(ctx, dir, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry starts the distribution server on a free loopback port, storing in a temporary
// folder, and returns host:port once /v2/ answers.
func startRegistry(t *testing.T, binary string) string {
	t.Helper()
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
	}
	log, _ := os.ReadFile(logf.Name())
	t.Fatalf("docker-registry on %s did not answer /v2/ within 30 s:\n%s", addr, log)
	return ""
}

// release runs `make release` into dir and returns what it printed and the release it wrote.
func release(ctx context.Context, t *testing.T, tl tools, registry, dir string) (string, matrix.Release) {
	t.Helper()
	start := time.Now()
	out := mustRun(ctx, t, tl.root, nil, "make", "--no-print-directory", "release",
		"REGISTRY="+registry, "VERSION="+version, "RELEASE_DIR="+dir, "COSIGN="+tl.cosign)
	t.Logf("make release into %s took %s:\n%s", dir, time.Since(start).Round(time.Second), out)
	data, err := os.ReadFile(filepath.Join(dir, matrix.ReleaseFile))
	if err != nil {
		t.Fatal(err)
	}
	r, err := matrix.ParseRelease(data)
	if err != nil {
		t.Fatal(err)
	}
	return out, r
}

func TestReleaseRoundTrip(t *testing.T) {
	tl := findTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	registry := startRegistry(t, tl.registry) + "/meshdemo"
	tmp := t.TempDir()
	dist1, dist2 := filepath.Join(tmp, "dist1"), filepath.Join(tmp, "dist2")

	out1, r1 := release(ctx, t, tl, registry, dist1)
	t.Run("prints every index digest and both platforms' sizes", func(t *testing.T) {
		for _, im := range r1.Images {
			if !strings.Contains(out1, im.Digest) {
				t.Errorf("%s: index digest %s not printed", im.Name, im.Digest)
			}
			var plats []string
			for _, p := range im.Platforms {
				plats = append(plats, p.Platform)
				if p.Size <= 0 || p.Size > 15<<20 {
					t.Errorf("%s %s: %d bytes, want 0 < size <= 15 MiB", im.Name, p.Platform, p.Size)
				}
				if !strings.Contains(out1, strconv.FormatInt(p.Size, 10)) {
					t.Errorf("%s %s: size %d not printed", im.Name, p.Platform, p.Size)
				}
			}
			slices.Sort(plats)
			if !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
				t.Errorf("%s: platforms %v, want linux/amd64 and linux/arm64", im.Name, plats)
			}
		}
	})
	t.Run("42 bundles and SHA256SUMS", func(t *testing.T) {
		bundles, err := filepath.Glob(filepath.Join(dist1, "meshdemo-*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if want := len(matrix.Profiles()); len(bundles) != want {
			t.Errorf("%d bundles, want %d", len(bundles), want)
		}
		for _, p := range matrix.Profiles() {
			data, err := os.ReadFile(filepath.Join(dist1, "meshdemo-"+p+".yaml"))
			if err != nil {
				t.Error(err)
				continue
			}
			for _, im := range r1.Images {
				if strings.Contains(string(data), "image: "+im.Repository+":") {
					t.Errorf("%s: %s referenced by tag, want by digest", p, im.Name)
				}
			}
		}
		sums := mustRun(ctx, t, dist1, nil, "sha256sum", "-c", "SHA256SUMS")
		if n := strings.Count(sums, ": OK"); n != len(matrix.Profiles()) {
			t.Errorf("sha256sum -c: %d files OK, want %d:\n%s", n, len(matrix.Profiles()), sums)
		}
	})

	_, r2 := release(ctx, t, tl, registry, dist2)
	t.Run("a second release of the commit gives the same digests and bundles", func(t *testing.T) {
		for i, im := range r1.Images {
			if r2.Images[i].Digest != im.Digest || !slices.Equal(r2.Images[i].Platforms, im.Platforms) {
				t.Errorf("%s: first %s %v, second %s %v", im.Name, im.Digest, im.Platforms, r2.Images[i].Digest, r2.Images[i].Platforms)
			}
		}
		a, _ := os.ReadFile(filepath.Join(dist1, "SHA256SUMS"))
		b, _ := os.ReadFile(filepath.Join(dist2, "SHA256SUMS"))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("SHA256SUMS differ between the two releases:\n%s\n---\n%s", a, b)
		}
	})

	t.Run("a changed bundle fails its checksum", func(t *testing.T) {
		dir := t.TempDir()
		sums, err := os.ReadFile(filepath.Join(dist1, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), sums, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, p := range matrix.Profiles() {
			name := "meshdemo-" + p + ".yaml"
			data, err := os.ReadFile(filepath.Join(dist1, name))
			if err != nil {
				t.Fatal(err)
			}
			if p == "canary" {
				data = bytes.Replace(data, []byte("replicas: 1"), []byte("replicas: 9"), 1)
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := run(ctx, dir, nil, "sha256sum", "-c", "SHA256SUMS")
		if err == nil || !strings.Contains(out, "meshdemo-canary.yaml: FAILED") {
			t.Errorf("sha256sum -c on a changed bundle: err %v, want meshdemo-canary.yaml: FAILED:\n%s", err, out)
		}
	})

	t.Run("cosign verifies every index with the release key, and nothing else", func(t *testing.T) {
		pub := filepath.Join(dist1, "cosign.pub")
		// cosign's key-pair files are generated in a folder of their own, without a password.
		other := t.TempDir()
		mustRun(ctx, t, other, []string{"COSIGN_PASSWORD="}, tl.cosign, "generate-key-pair")
		for _, im := range r1.Images {
			out, err := run(ctx, tl.root, nil, tl.cosign, append(append([]string{"verify", "--key", pub}, offlineVerify...), "--output", "json", im.Ref())...)
			if err != nil {
				t.Errorf("%s: %v", im.Name, err)
				continue
			}
			// cosign v3's verify accepts any bundle the key signed for the digest, the SBOM
			// attestation too: the signature proper (`cosign sign`) is the one of this type.
			if want := `"docker-manifest-digest":"` + im.Digest + `"},"type":"https://sigstore.dev/cosign/sign/v1"`; !strings.Contains(out, want) {
				t.Errorf("%s: cosign verify found no cosign signature of %s (%s):\n%s", im.Name, im.Digest, want, out)
			}
			if out, err := run(ctx, tl.root, nil, tl.cosign, append(append([]string{"verify-attestation", "--key", pub, "--type", "spdxjson"}, offlineVerify...), im.Ref())...); err != nil {
				t.Errorf("%s: the SBOM attestation does not verify: %v", im.Name, err)
			} else if err := spdxAttestation(out, im.Digest); err != nil {
				t.Errorf("%s: %v", im.Name, err)
			}
			if _, err := run(ctx, tl.root, nil, tl.cosign, append(append([]string{"verify", "--key", filepath.Join(other, "cosign.pub")}, offlineVerify...), im.Ref())...); err == nil {
				t.Errorf("%s: verified with a key that did not sign it", im.Name)
			}
			// A platform's manifest is an image of its own that nobody signed.
			unsigned := im.Repository + "@" + im.Platforms[0].Digest
			if _, err := run(ctx, tl.root, nil, tl.cosign, append(append([]string{"verify", "--key", pub}, offlineVerify...), unsigned)...); err == nil {
				t.Errorf("%s: the unsigned image %s verified", im.Name, unsigned)
			}
		}
	})

	t.Run("docker pulls every image by digest", func(t *testing.T) {
		for _, im := range r1.Images {
			mustRun(ctx, t, tl.root, nil, "docker", "pull", "--quiet", im.Ref())
			out := mustRun(ctx, t, tl.root, nil, "docker", "image", "inspect", "--format",
				`{{.Os}}/{{.Architecture}} {{.Config.User}} {{index .Config.Labels "org.opencontainers.image.version"}}`, im.Ref())
			if want := "linux/amd64 65532:65532 " + version; strings.TrimSpace(out) != want {
				t.Errorf("%s: docker image inspect: %q, want %q", im.Name, strings.TrimSpace(out), want)
			}
		}
	})

	t.Run("the arm64 image runs under qemu and answers /healthz", func(t *testing.T) {
		im, _ := r1.Image("server2")
		var arm string
		for _, p := range im.Platforms {
			if p.Platform == "linux/arm64" {
				arm = im.Repository + "@" + p.Digest
			}
		}
		mustRun(ctx, t, tl.root, nil, "docker", "pull", "--quiet", "--platform", "linux/arm64", arm)
		port := freePort(t)
		id := strings.TrimSpace(mustRun(ctx, t, tl.root, nil, "docker", "run", "-d", "--rm", "--platform", "linux/arm64",
			"-e", "SERVICE_VERSION=v1", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), arm))
		t.Cleanup(func() { _, _ = run(context.Background(), tl.root, nil, "docker", "rm", "-f", id) })
		arch := mustRun(ctx, t, tl.root, nil, "docker", "image", "inspect", "--format", "{{.Architecture}}", arm)
		if strings.TrimSpace(arch) != "arm64" {
			t.Fatalf("%s is %s, want arm64", arm, arch)
		}
		body, err := waitOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 90*time.Second)
		if err != nil {
			logs, _ := run(ctx, tl.root, nil, "docker", "logs", id)
			t.Fatalf("arm64 server2 under qemu: %v\n%s", err, logs)
		}
		t.Logf("arm64 server2 under qemu: /healthz %s", body)
	})

	t.Run("docker compose from the pulled digests answers the chain", func(t *testing.T) {
		override := filepath.Join(dist1, "compose.release.yaml")
		if _, err := os.Stat(override); err != nil {
			t.Fatal(err)
		}
		env := []string{}
		var client int
		for _, w := range matrix.WorkloadNames() {
			v := "MESHDEMO_" + strings.ToUpper(strings.ReplaceAll(w, "-", "_"))
			p := freePort(t)
			if w == "client" {
				client = p
			}
			env = append(env, v+"_PORT="+strconv.Itoa(p), v+"_ADMIN_PORT="+strconv.Itoa(freePort(t)), v+"_GRPC_PORT="+strconv.Itoa(freePort(t)))
		}
		compose := func(args ...string) (string, error) {
			argv := append(append(slices.Clone(tl.compose[1:]), "-p", "meshdemo-release", "-f", "compose.yaml", "-f", override), args...)
			return run(ctx, tl.root, env, tl.compose[0], argv...)
		}
		mustCompose := func(args ...string) string {
			t.Helper()
			out, err := compose(args...)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		_, _ = compose("down", "--timeout", "5", "--remove-orphans")
		t.Cleanup(func() { _, _ = compose("down", "--timeout", "10", "--remove-orphans") })
		mustCompose("up", "-d", "--no-build")
		body, err := waitOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/client/server1", client), 2*time.Minute)
		if err != nil {
			logs, _ := compose("logs", "--no-color", "--tail", "20")
			t.Fatalf("the chain: %v\n%s", err, logs)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(body), &obj); err != nil || len(obj) == 0 {
			t.Fatalf("the chain answered %q, want server2's JSON object", body)
		}
		// Every container runs the image pulled by digest (image IDs compared).
		for _, w := range matrix.WorkloadNames() {
			im, _ := r1.Image(w)
			want := strings.TrimSpace(mustRun(ctx, t, tl.root, nil, "docker", "image", "inspect", "--format", "{{.Id}}", im.Ref()))
			id := strings.TrimSpace(mustCompose("ps", "-q", w))
			got := strings.TrimSpace(mustRun(ctx, t, tl.root, nil, "docker", "inspect", "--format", "{{.Image}}", id))
			if got != want {
				t.Errorf("%s runs image %s, want %s (%s)", w, got, want, im.Ref())
			}
		}
	})
}

// offlineVerify are the flags that let cosign verify a key-signed image with no network beyond
// the registry: no transparency log lookup (make release signs without uploading to Rekor).
var offlineVerify = []string{"--insecure-ignore-tlog=true"}

// waitOK polls url until it answers 200 and returns the body.
func waitOK(ctx context.Context, url string, within time.Duration) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b), nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return "", fmt.Errorf("%s: no 200 within %s (last: %s)", url, within, last)
}

// spdxAttestation checks what `cosign verify-attestation --type spdxjson` printed (stdout and
// stderr together): a DSSE envelope on a line of its own whose payload, base64, is an in-toto
// statement about digest with an SPDX 2.x document as predicate. cosign v3 prints only the
// envelope: the word spdx appears nowhere until the payload is decoded.
func spdxAttestation(out, digest string) error {
	for line := range strings.Lines(out) {
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
		}
		if json.Unmarshal([]byte(line), &env) != nil || env.Payload == "" {
			continue
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			return fmt.Errorf("verify-attestation: the envelope's payload is not base64: %w", err)
		}
		var st struct {
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			Predicate struct {
				SPDXVersion string `json:"spdxVersion"`
				Packages    []any  `json:"packages"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal(payload, &st); err != nil {
			return fmt.Errorf("verify-attestation: the payload is not an in-toto statement: %w\n%.500s", err, payload)
		}
		switch {
		case st.PredicateType != "https://spdx.dev/Document":
			return fmt.Errorf("verify-attestation: predicate type %q, want https://spdx.dev/Document", st.PredicateType)
		case len(st.Subject) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != digest:
			return fmt.Errorf("verify-attestation: the statement's subject is not %s: %+v", digest, st.Subject)
		case !strings.HasPrefix(st.Predicate.SPDXVersion, "SPDX-2.") || len(st.Predicate.Packages) == 0:
			return fmt.Errorf("verify-attestation: the predicate is not an SPDX 2.x document with packages:\n%.500s", payload)
		}
		return nil
	}
	return fmt.Errorf("verify-attestation printed no DSSE envelope:\n%.500s", out)
}
