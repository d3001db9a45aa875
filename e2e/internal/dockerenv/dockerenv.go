// Package dockerenv is what container tests share: finding the Docker engine and deciding
// once whether a test may skip without one, building the workload binaries and images
// with no registry pull, and removing what an earlier, killed test run left behind.
//
// Ryuk (testcontainers' reaper) needs a pulled image, so tests run with it disabled and
// clean up themselves; every container and network they create carries OwnerLabel so that
// leftovers of a crashed run can be found and removed by the next one.
package dockerenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// Env variables that decide what a test does without an engine.
const (
	// EnvCI is set to "true" by CI; there a missing engine fails the run.
	EnvCI = "CI"
	// EnvAllowNoDocker=1 lets a CI run pass without an engine (the tests still skip loudly).
	EnvAllowNoDocker = "MESHDEMO_ALLOW_NO_DOCKER"
)

// Engine is what Probe learned about the Docker engine.
type Engine struct {
	// Err is why no engine is usable; nil when one answered.
	Err           error
	ServerVersion string
	APIVersion    string
	OS            string // the engine's platform, which images must be built for
	Arch          string
}

// Available reports whether an engine answered.
func (e Engine) Available() bool { return e.Err == nil }

var (
	probeOnce sync.Once
	probed    Engine
)

// Probe asks the engine for its version once per process. TESTCONTAINERS_* and DOCKER_*
// variables choose the engine as they do for testcontainers itself.
func Probe(ctx context.Context) Engine {
	probeOnce.Do(func() { probed = probe(ctx) })
	return probed
}

func probe(ctx context.Context) Engine {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cli, err := newClient(ctx)
	if err != nil {
		return Engine{Err: fmt.Errorf("docker client: %w", err)}
	}
	defer cli.Close()
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		return Engine{Err: fmt.Errorf("docker engine did not answer: %w", err)}
	}
	return Engine{ServerVersion: v.Version, APIVersion: v.APIVersion, OS: v.Os, Arch: v.Arch}
}

// newClient turns testcontainers' panic when it finds no Docker host at all (no socket,
// no DOCKER_HOST) into an error, which is the case the skip policy exists for.
func newClient(ctx context.Context) (cli *testcontainers.DockerClient, err error) {
	defer func() {
		if p := recover(); p != nil {
			cli, err = nil, fmt.Errorf("%v", p)
		}
	}()
	return testcontainers.NewDockerClientWithOpts(ctx)
}

// SkipPolicy says what a test must do when the engine is missing: "" (the engine is
// there, run), or a message and whether it is fatal.
func SkipPolicy(e Engine, getenv func(string) string) (msg string, fatal bool) {
	if e.Available() {
		return "", false
	}
	msg = fmt.Sprintf("\n%s\n!!! NO DOCKER ENGINE: container tests cannot run: %v\n"+
		"!!! Start one (build/docker/ensure-docker.sh does it on Debian as root) and run again.\n%s",
		strings.Repeat("!", 78), e.Err, strings.Repeat("!", 78))
	if getenv(EnvCI) == "true" && getenv(EnvAllowNoDocker) != "1" {
		return msg + "\n!!! CI=true: failing instead of skipping (set " + EnvAllowNoDocker + "=1 to allow).", true
	}
	return msg, false
}

// Require skips (or, under CI, fails) t when no engine is available.
func Require(t testing.TB, e Engine) {
	t.Helper()
	msg, fatal := SkipPolicy(e, os.Getenv)
	switch {
	case msg == "":
	case fatal:
		t.Fatal(msg)
	default:
		t.Skip(msg)
	}
}
