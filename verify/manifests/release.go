package manifests

import (
	"fmt"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// UseRelease writes the release component of r (matrix.ReleaseComponentFile) into the tree at
// matrix.ReleaseComponent, the only place it ever exists: the bundles (matrix.ReleaseIn) can
// then be rendered from the tree. Like every Write, it drops what the tree has built.
func (t *Tree) UseRelease(r matrix.Release) error {
	return t.Write(matrix.ReleaseComponent+"/kustomization.yaml", []byte(matrix.ReleaseComponentFile(r)))
}

// Bundle renders a profile's release bundle (matrix.ReleaseIn) from a tree that UseRelease
// prepared, and checks it: strict decoding and every rule, as for any cluster (Options.Release).
func (t *Tree) Bundle(r matrix.Release, profile string) ([]byte, error) {
	f, name, err := matrix.ParseProfile(profile)
	if err != nil {
		return nil, err
	}
	out, err := t.Render(matrix.ReleaseIn(f, name))
	if err != nil {
		return nil, err
	}
	objs, err := Decode(out)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: strict decode: %w", profile, err)
	}
	if err := Check(objs, Options{Flavour: f, Release: &r}); err != nil {
		return nil, fmt.Errorf("bundle %s: rules: %w", profile, err)
	}
	return out, nil
}
