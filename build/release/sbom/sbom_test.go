package sbom

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
)

var img = Image{Name: "client", Version: "v1.2.3", Revision: "0123456789abcdef0123456789abcdef01234567", Created: time.Date(2026, 11, 3, 14, 15, 16, 0, time.UTC)}

func info() *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Path:      "github.com/meshdemo/meshdemo/services/client",
		Main:      debug.Module{Path: "github.com/meshdemo/meshdemo/services", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "github.com/go-chi/chi/v5", Version: "v5.2.3", Sum: "h1:abc="},
			{Path: "example.com/old", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/new", Version: "v1.1.0"}},
			{Path: "github.com/meshdemo/meshdemo/deploy/matrix", Version: "v0.0.0-00010101000000-000000000000", Replace: &debug.Module{Path: "../deploy/matrix", Version: "(devel)"}},
		},
	}
}

// purls maps each package's name to its package URL, read back from the JSON.
func roundTrip(t *testing.T, data []byte) map[string]string {
	t.Helper()
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the SPDX JSON reader rejects the document: %v\n%s", err, data)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DocumentNamespace != "https://github.com/meshdemo/meshdemo/sbom/client/v1.2.3/0123456789abcdef0123456789abcdef01234567" || doc.CreationInfo.Created != "2026-11-03T14:15:16Z" {
		t.Errorf("version %q namespace %q created %q", doc.SPDXVersion, doc.DocumentNamespace, doc.CreationInfo.Created)
	}
	out := map[string]string{}
	for _, p := range doc.Packages {
		if len(p.PackageExternalReferences) != 1 || p.PackageExternalReferences[0].RefType != "purl" {
			t.Errorf("%s: external refs %+v, want one purl", p.PackageName, p.PackageExternalReferences)
			continue
		}
		out[p.PackageName] = p.PackageExternalReferences[0].Locator
	}
	var describes, dependsOn int
	for _, r := range doc.Relationships {
		switch r.Relationship {
		case "DESCRIBES":
			describes++
			if r.RefB.ElementRefID != "Package-main" {
				t.Errorf("the document describes %s, want the main module", r.RefB.ElementRefID)
			}
		case "DEPENDS_ON":
			dependsOn++
		}
	}
	if describes != 1 || dependsOn != len(doc.Packages)-1 {
		t.Errorf("%d DESCRIBES, %d DEPENDS_ON for %d packages", describes, dependsOn, len(doc.Packages))
	}
	return out
}

func TestDocumentRoundTripsAndListsEveryModule(t *testing.T) {
	t.Parallel()
	doc, err := FromBuildInfo(info(), img)
	if err != nil {
		t.Fatal(err)
	}
	data, err := JSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, data)
	want := map[string]string{
		"github.com/meshdemo/meshdemo/services":      "pkg:golang/github.com/meshdemo/meshdemo/services@v1.2.3",
		"stdlib":                                     "pkg:golang/stdlib@1.26.8",
		"github.com/go-chi/chi/v5":                   "pkg:golang/github.com/go-chi/chi/v5@v5.2.3",
		"example.com/new":                            "pkg:golang/example.com/new@v1.1.0",
		"github.com/meshdemo/meshdemo/deploy/matrix": "pkg:golang/github.com/meshdemo/meshdemo/deploy/matrix@v1.2.3",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: purl %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("packages %v, want %v", got, want)
	}
	again, _ := FromBuildInfo(info(), img)
	data2, _ := JSON(again)
	if !bytes.Equal(data, data2) {
		t.Error("the same build info gave two different documents")
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	if _, err := FromBuildInfo(&debug.BuildInfo{}, img); err == nil || !strings.Contains(err.Error(), "main module") {
		t.Errorf("no main module: %v", err)
	}
	if _, err := FromBuildInfo(info(), Image{Name: "client"}); err == nil {
		t.Error("no version, revision or time: no error")
	}
	if _, err := FromBinary("sbom_test.go", img); err == nil {
		t.Error("a file that is no Go binary: no error")
	}
}
