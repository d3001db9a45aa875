package pilot

func ambientBaseChecks() []check { return nil }

func ambientAuthzChecks() []check     { return nil }
func ambientRateLimitChecks() []check { return nil }
