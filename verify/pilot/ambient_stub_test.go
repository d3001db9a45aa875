package pilot

func ambientBaseChecks() []check { return nil }
