// Package preflight runs skaffold's own code, from the skaffold module pinned in this folder's
// go.mod (the one `make tools` builds the CLI from), over the repository's skaffold.yaml files:
// the steps `skaffold run` and `skaffold dev` take before they build anything. It lives in this
// module, not in verify/, so that it compiles against exactly the pins of the skaffold binary
// and shares its build cache.
package preflight

import (
	"context"
	"fmt"

	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/config"
	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/docker"
	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/graph"
	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/parser"
	"github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/schema/latest"
)

// DockerConfig is the little of skaffold's run context that its docker package reads while it
// resolves dependencies: the run mode, and no cluster, registry or daemon settings.
type DockerConfig struct{ RunMode config.RunMode }

var _ docker.Config = DockerConfig{}

func (DockerConfig) Prune() bool                            { return false }
func (DockerConfig) ContainerDebugging() bool               { return false }
func (DockerConfig) GlobalConfig() string                   { return "" }
func (DockerConfig) GetKubeContext() string                 { return "" }
func (DockerConfig) MinikubeProfile() string                { return "" }
func (DockerConfig) GetInsecureRegistries() map[string]bool { return nil }
func (c DockerConfig) Mode() config.RunMode                 { return c.RunMode }

// Load parses a skaffold.yaml with skaffold's parser, the named profiles applied and defaults
// set, exactly as the CLI does. As in the CLI, relative paths (an artifact's context) resolve
// against the working directory: call it from the folder skaffold is meant to run in.
func Load(ctx context.Context, file string, profiles ...string) ([]*latest.SkaffoldConfig, error) {
	set, err := parser.GetConfigSet(ctx, config.SkaffoldOptions{ConfigurationFile: file, Profiles: profiles})
	if err != nil {
		return nil, err
	}
	var out []*latest.SkaffoldConfig
	for _, e := range set {
		out = append(out, e.SkaffoldConfig)
	}
	return out, nil
}

// Artifacts are the build artifacts of every config, in file order.
func Artifacts(cfgs []*latest.SkaffoldConfig) []*latest.Artifact {
	var out []*latest.Artifact
	for _, c := range cfgs {
		out = append(out, c.Build.Artifacts...)
	}
	return out
}

// tags resolves every artifact to the tag `skaffold run --tag dev` gives it.
type tags struct{}

func (tags) GetImageTag(image string) (string, bool) { return image + ":dev", true }

// Dependencies returns the source files skaffold computes for each artifact, keyed by image:
// the input of `skaffold run`'s build cache key and the file set `skaffold dev` watches. It goes
// through skaffold's own resolver (graph.SourceDependenciesCache, which for a docker artifact
// evaluates the build args and calls docker.GetDependencies). Paths are absolute.
//
// For a Dockerfile whose stages start FROM a registry image, skaffold looks that image up (for
// ONBUILD triggers and WORKDIR) through docker.RetrieveImage, which needs a Docker daemon or the
// registry; a caller without either replaces that variable first.
func Dependencies(ctx context.Context, mode config.RunMode, artifacts []*latest.Artifact) (map[string][]string, error) {
	resolver := graph.NewSourceDependenciesCache(DockerConfig{RunMode: mode}, tags{}, graph.ToArtifactGraph(artifacts))
	out := map[string][]string{}
	for _, a := range artifacts {
		deps, err := resolver.TransitiveArtifactDependencies(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("artifact %s: %w", a.ImageName, err)
		}
		out[a.ImageName] = deps
	}
	return out, nil
}

// DockerBuildArgs are the arguments skaffold's local builder gives `docker build` for a docker
// artifact after the context and --file/-t (build args, cliFlags, target, ...), from skaffold's
// own docker.EvalBuildArgsWithEnv and docker.ToCLIBuildArgs.
func DockerBuildArgs(mode config.RunMode, a *latest.Artifact, tag string) ([]string, error) {
	if a.DockerArtifact == nil {
		return nil, fmt.Errorf("artifact %s is not built from a Dockerfile", a.ImageName)
	}
	env, err := docker.EnvTags(tag)
	if err != nil {
		return nil, err
	}
	args, err := docker.EvalBuildArgsWithEnv(mode, a.Workspace, a.DockerArtifact.DockerfilePath, a.DockerArtifact.BuildArgs, nil, env)
	if err != nil {
		return nil, err
	}
	return docker.ToCLIBuildArgs(a.DockerArtifact, args, env)
}
