package dockerenv

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSkipPolicy(t *testing.T) {
	t.Parallel()
	down := Engine{Err: errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")}
	up := Engine{ServerVersion: "20.10.24", OS: "linux", Arch: "amd64"}
	cases := []struct {
		name      string
		engine    Engine
		env       map[string]string
		wantMsg   bool
		wantFatal bool
	}{
		{"engine up", up, nil, false, false},
		{"engine up in CI", up, map[string]string{"CI": "true"}, false, false},
		{"no engine, developer machine", down, nil, true, false},
		{"no engine in CI", down, map[string]string{"CI": "true"}, true, true},
		{"no engine in CI, allowed", down, map[string]string{"CI": "true", "MESHDEMO_ALLOW_NO_DOCKER": "1"}, true, false},
		{"no engine, CI not true", down, map[string]string{"CI": "1"}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			msg, fatal := SkipPolicy(c.engine, func(k string) string { return c.env[k] })
			if (msg != "") != c.wantMsg || fatal != c.wantFatal {
				t.Fatalf("SkipPolicy = (%q, %v), want message %v fatal %v", msg, fatal, c.wantMsg, c.wantFatal)
			}
			if c.wantMsg && (!strings.Contains(msg, "NO DOCKER ENGINE") || !strings.Contains(msg, c.engine.Err.Error())) {
				t.Errorf("message does not say loudly why: %q", msg)
			}
		})
	}
}

func TestImageContext(t *testing.T) {
	t.Parallel()
	r, err := ImageContext([]byte("FROM scratch\n"), "server2", "linux", "arm64", []byte("ELF"))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(r)
	got := map[string]string{}
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name], modes[h.Name] = string(b), h.Mode
	}
	want := map[string]string{"Dockerfile": "FROM scratch\n", "bin/linux_arm64/server2": "ELF"}
	if len(got) != len(want) {
		t.Fatalf("context holds %v, want exactly %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if modes["bin/linux_arm64/server2"]&0o111 == 0 {
		t.Errorf("binary mode %o is not executable", modes["bin/linux_arm64/server2"])
	}
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.work", "build/Dockerfile", "compose.yaml", "services/go.mod"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("root %s: %v", root, err)
		}
	}
}
