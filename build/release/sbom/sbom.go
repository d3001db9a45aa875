// Package sbom writes the SPDX 2.3 software bill of materials of a release image from what the
// Go linker embedded in its binary (debug/buildinfo): the main module, every dependency module
// at the version that was linked, and the Go standard library at the toolchain's version. It is
// the exact dependency set of the shipped bytes, not of go.mod, and needs no scanner.
package sbom

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// Image says which image and release the document is about.
type Image struct {
	Name     string    // the image's name (client, ..., loadtest)
	Version  string    // the release version: the main module's version in the document
	Revision string    // the commit
	Created  time.Time // the commit's time: the document's creation time
}

// Namespace is the document's unique and reproducible URI: one per image, version and commit.
func (im Image) Namespace() string {
	return fmt.Sprintf("https://github.com/meshdemo/meshdemo/sbom/%s/%s/%s", im.Name, im.Version, im.Revision)
}

// FromBinary reads the build information of the Go binary at path and returns its document.
func FromBinary(path string, im Image) (*spdx.Document, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return FromBuildInfo(info, im)
}

// FromBuildInfo is the SPDX document of a binary's build information.
func FromBuildInfo(info *debug.BuildInfo, im Image) (*spdx.Document, error) {
	if info.Main.Path == "" {
		return nil, errors.New("sbom: the binary names no main module")
	}
	if im.Created.IsZero() || im.Name == "" || im.Version == "" || im.Revision == "" {
		return nil, fmt.Errorf("sbom: image %+v: name, version, revision and time are required", im)
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      "meshdemo-" + im.Name + "-" + im.Version,
		DocumentNamespace: im.Namespace(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{
				{CreatorType: "Organization", Creator: "meshdemo"},
				{CreatorType: "Tool", Creator: "meshdemo-build-release"},
			},
			Created: im.Created.UTC().Format(time.RFC3339),
		},
	}
	main := pkg("main", info.Main.Path, im.Version)
	main.PrimaryPackagePurpose = "APPLICATION"
	main.PackageComment = "the main module of the image's binary (package " + info.Path + ")"
	doc.Packages = append(doc.Packages, main)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA:         common.MakeDocElementID("", "DOCUMENT"),
		RefB:         common.MakeDocElementID("", string(main.PackageSPDXIdentifier)),
		Relationship: common.TypeRelationshipDescribe,
	})
	goVersion := strings.TrimPrefix(info.GoVersion, "go")
	std := pkg("stdlib", "stdlib", goVersion)
	std.PackageDownloadLocation = "https://go.dev/dl/"
	std.PackageComment = "the Go standard library and runtime of toolchain " + info.GoVersion
	deps := []*spdx.Package{std}
	for i, d := range info.Deps {
		// A module replaced by another module version is that version; one replaced by a
		// local folder (the repository's own modules, built from the same commit) keeps its
		// name and takes the release's version.
		m, version, comment := d, d.Version, ""
		switch {
		case d.Replace != nil && localDir(d.Replace.Path):
			version, comment = im.Version, "built from the local folder "+d.Replace.Path+" at the release's commit"
		case d.Replace != nil:
			m, version, comment = d.Replace, d.Replace.Version, "replaces "+d.Path+" "+d.Version
		}
		p := pkg(fmt.Sprintf("dep-%d", i), m.Path, version)
		if m.Sum != "" {
			comment = strings.TrimSpace(comment + " (go.sum " + m.Sum + ")")
		}
		p.PackageComment = comment
		deps = append(deps, p)
	}
	for _, p := range deps {
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", string(main.PackageSPDXIdentifier)),
			RefB:         common.MakeDocElementID("", string(p.PackageSPDXIdentifier)),
			Relationship: common.TypeRelationshipDependsOn,
		})
	}
	return doc, nil
}

// localDir reports whether a replacement is a folder (go.mod's ./x, ../x or /x), not a module.
func localDir(p string) bool {
	return strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/") || p == "." || p == ".."
}

// pkg is one Go module as an SPDX package, with its package URL.
func pkg(id, modPath, version string) *spdx.Package {
	purl := "pkg:golang/" + modPath
	if version != "" {
		purl += "@" + version
	}
	return &spdx.Package{
		PackageName:             modPath,
		PackageSPDXIdentifier:   common.ElementID("Package-" + id),
		PackageVersion:          version,
		PackageDownloadLocation: "NOASSERTION",
		FilesAnalyzed:           false,
		PackageLicenseConcluded: "NOASSERTION",
		PackageLicenseDeclared:  "NOASSERTION",
		PackageCopyrightText:    "NOASSERTION",
		PackageExternalReferences: []*spdx.PackageExternalReference{
			{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl},
		},
	}
}

// JSON is the document in SPDX JSON, indented, with a final newline.
func JSON(doc *spdx.Document) ([]byte, error) {
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  ")); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
