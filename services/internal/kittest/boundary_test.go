package kittest_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestKitImportsNoWorkload: a kit package (anything under services/internal, its tests
// included) takes from this module only the kit itself and the exported contract
// packages. A workload (user-service/userstore, say), the bench commands or the
// integration tests imported here would make the kit depend on what it serves.
func TestKitImportsNoWorkload(t *testing.T) {
	t.Parallel()
	const module = "github.com/meshdemo/meshdemo/services"
	allowed := []string{"internal", "headers", "pathheader", "proto"}
	args := []string{"list", "-e", "-json=ImportPath,Deps,TestImports,XTestImports,Error",
		"-tags", "grpcnotrace,nopgxregisterdefaulttypes", "../..."}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	var kit, fromModule int
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath                      string
			Deps, TestImports, XTestImports []string
			Error                           *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -json: %v", err)
		}
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		if !strings.HasPrefix(p.ImportPath, module+"/internal/") {
			t.Fatalf("go list listed %s: the pattern is not services/internal", p.ImportPath)
		}
		kit++
		for _, dep := range append(append(p.Deps, p.TestImports...), p.XTestImports...) {
			if dep != module && !strings.HasPrefix(dep, module+"/") {
				continue
			}
			fromModule++
			if !within(dep, module, allowed) {
				t.Errorf("kit package %s imports %s", p.ImportPath, dep)
			}
		}
	}
	if kit < 10 || fromModule == 0 {
		t.Fatalf("go list printed %d kit packages, %d imports from the module: not the kit", kit, fromModule)
	}
}

// within reports whether pkg is one of the module's roots or a package below one.
func within(pkg, module string, roots []string) bool {
	for _, r := range roots {
		if r = module + "/" + r; pkg == r || strings.HasPrefix(pkg, r+"/") {
			return true
		}
	}
	return false
}
