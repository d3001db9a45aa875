package pilot

import (
	"testing"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// check is one promise a scenario makes, asserted on the configuration istiod generates.
// Every check carries at least one broken fixture: a mutation of the rendered manifests that
// must make the check fail, which proves the check can fail at all.
type check struct {
	name   string
	run    func(m *mesh) error
	broken []fixture
}

// fixture breaks a rendered scenario in memory. mutate returns an error when it finds nothing
// to change, so a fixture cannot silently stop breaking anything when manifests are renamed.
type fixture struct {
	name   string
	mutate func(objs []object) error
}

// runScenario renders the flavour's component for scenario name with the flavour's base and the
// canary, loads it into Istio's control plane and runs every check; then, per check, loads each
// broken fixture and requires the same check to fail.
func runScenario(t *testing.T, f matrix.Flavour, name string, checks []check) {
	t.Helper()
	if !f.Sidecars() {
		requireAmbient(t)
	}
	fs := spec(t, f)
	if len(checks) == 0 {
		t.Fatalf("scenario %s has no checks", name)
	}
	m := newMesh(t, f, render(t, f, name))
	if name != "" {
		// What the flavour's base promises must survive every scenario; TestBase/<flavour>
		// proves these checks bite.
		for _, c := range fs.base() {
			t.Run("base/"+c.name, func(t *testing.T) {
				if err := c.run(m.in(t)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(m.in(t)); err != nil {
				t.Error(err)
			}
			if len(c.broken) == 0 {
				t.Fatalf("check %s has no broken fixture proving it can fail", c.name)
			}
			for _, fx := range c.broken {
				t.Run("broken/"+fx.name, func(t *testing.T) {
					objs := render(t, f, name)
					if err := fx.mutate(objs); err != nil {
						t.Fatalf("fixture %s: %v", fx.name, err)
					}
					err := c.run(newMesh(t, f, objs))
					if err == nil {
						t.Fatalf("check %s passed on broken fixture %s; it cannot detect that breakage", c.name, fx.name)
					}
					t.Logf("caught as expected: %v", err)
				})
			}
		})
	}
}
