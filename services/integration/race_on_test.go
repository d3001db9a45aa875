//go:build race

package integration

// raceEnabled builds the workloads with the race detector when the tests run with it.
const raceEnabled = true
