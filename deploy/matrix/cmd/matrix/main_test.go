package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"workloads"}, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "client\nserver1\nserver2\nuser-service\n" {
		t.Errorf("workloads printed %q", got)
	}
	for _, bad := range [][]string{nil, {"nope"}, {"workloads", "extra"}} {
		if err := run(bad, &out); err == nil || !strings.Contains(err.Error(), "want") && !strings.Contains(err.Error(), "usage") {
			t.Errorf("run(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestRefs(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(`{"registry":"127.0.0.1:5000/meshdemo","version":"v1.2.3","revision":"r","created":"c","images":[`)
	want, wantSubjects := "", ""
	for i, name := range []string{"client", "server1", "server2", "user-service", "loadtest"} {
		if i > 0 {
			b.WriteString(",")
		}
		d := "sha256:" + strings.Repeat(string(rune('a'+i)), 64)
		b.WriteString(`{"name":"` + name + `","repository":"127.0.0.1:5000/meshdemo/` + name + `","digest":"` + d +
			`","platforms":[{"platform":"linux/amd64","digest":"` + d + `","size":1}]}`)
		want += name + " 127.0.0.1:5000/meshdemo/" + name + "@" + d + "\n"
		wantSubjects += strings.Repeat(string(rune('a'+i)), 64) + "  127.0.0.1:5000/meshdemo/" + name + "\n"
	}
	b.WriteString("]}")
	file := filepath.Join(dir, "images.json")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"refs", file}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("refs printed\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := run([]string{"subjects", file}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != wantSubjects {
		t.Errorf("subjects printed\n%s\nwant\n%s", out.String(), wantSubjects)
	}
	if err := os.WriteFile(file, []byte(`{"registry":"x/y","version":"v1","images":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"refs", "subjects"} {
		if err := run([]string{cmd, file}, &out); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("%s of a release without images: %v, want an error naming the missing image", cmd, err)
		}
	}
}
