package pilot

import (
	"os"
	"testing"

	istiolog "istio.io/istio/pkg/log"
)

// TestMain silences istiod's own logging, so a failing assertion is not buried under
// thousands of informational lines. PILOT_LOG=info (or debug) brings them back.
func TestMain(m *testing.M) {
	level := istiolog.NoneLevel
	if l := os.Getenv("PILOT_LOG"); l != "" {
		level = istiolog.StringToLevel(l)
	}
	o := istiolog.DefaultOptions()
	o.SetDefaultOutputLevel(istiolog.OverrideScopeName, level)
	if err := istiolog.Configure(o); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
