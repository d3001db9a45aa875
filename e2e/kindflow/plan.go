package kindflow

import (
	"context"
	"fmt"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// Plan is everything `make e2e` would run, in order, with what the suite runs on the cluster
// spelled out after the test step: the baseline's meshed calls, then for each scenario of the
// declaration (matrix.ScenarioNames) its deploy, its meshed calls and the deploy back to the
// baseline. The dry run prints it; the tests check it deploys every scenario once and returns
// to the baseline after each.
func Plan(ctx context.Context, c Config) ([]Step, error) {
	flow, err := c.Flow(ctx)
	if err != nil {
		return nil, err
	}
	restore, err := c.Deploy(ctx, Baseline)
	if err != nil {
		return nil, err
	}
	var plan []Step
	suite := func(name string, steps ...Step) {
		for _, st := range steps {
			st.Name = "suite: " + name
			plan = append(plan, st)
		}
	}
	calls := func(scenario string) {
		for _, call := range MeshCalls[scenario] {
			suite(scenario+" call", Step{Args: c.Exec(call)})
		}
	}
	for _, s := range flow {
		plan = append(plan, s)
		if s.Name != "test" {
			continue
		}
		calls(Baseline)
		for _, name := range matrix.ScenarioNames() {
			apply, err := c.Deploy(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("scenario %s: %w", name, err)
			}
			suite("deploy "+name, apply...)
			calls(name)
			suite("deploy "+Baseline, restore...)
		}
	}
	return plan, nil
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}
