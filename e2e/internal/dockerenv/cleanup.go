package dockerenv

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/testcontainers/testcontainers-go"
)

// OwnerLabel marks containers and networks a test run created; its value is the pid of
// the test process. ComposeProjectPrefix does the same for compose projects
// (<prefix><pid>), whose containers compose labels itself.
const (
	OwnerLabel           = "org.meshdemo.e2e.owner-pid"
	ComposeProjectPrefix = "meshdemoct"
)

// OwnerLabels returns the labels for resources of the current process.
func OwnerLabels(pid int) map[string]string {
	return map[string]string{OwnerLabel: strconv.Itoa(pid)}
}

// alive reports whether a process with this pid exists on this machine. Signal 0 checks
// without sending anything; EPERM still means it exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// RemoveStale removes containers, images and networks that a test process, now gone, left behind
// (a run killed by a timeout cannot clean up after itself). Resources of live processes
// are left alone, so concurrent runs do not disturb each other. It returns what it removed.
func RemoveStale(ctx context.Context) ([]string, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()

	var removed []string
	var errs []error
	stale := func(owner string) bool {
		pid, err := strconv.Atoi(owner)
		return err == nil && !alive(pid)
	}

	ctrs, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	for _, c := range ctrs {
		owner, ok := c.Labels[OwnerLabel]
		if !ok {
			if p := c.Labels["com.docker.compose.project"]; strings.HasPrefix(p, ComposeProjectPrefix) {
				owner, ok = strings.TrimPrefix(p, ComposeProjectPrefix), true
			}
		}
		if !ok || !stale(owner) {
			continue
		}
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
			continue
		}
		removed = append(removed, "container "+strings.Join(c.Names, ","))
	}

	imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", OwnerLabel))})
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	for _, im := range imgs {
		if !stale(im.Labels[OwnerLabel]) {
			continue
		}
		if _, err := cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove image %s: %w", im.ID, err))
			continue
		}
		removed = append(removed, "image "+strings.Join(im.RepoTags, ","))
	}

	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs()})
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	for _, n := range nets {
		owner, ok := n.Labels[OwnerLabel]
		if !ok && strings.HasPrefix(n.Name, ComposeProjectPrefix) {
			owner, ok = strings.TrimSuffix(strings.TrimPrefix(n.Name, ComposeProjectPrefix), "_default"), true
		}
		if !ok || !stale(owner) {
			continue
		}
		if err := cli.NetworkRemove(ctx, n.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed = append(removed, "network "+n.Name)
	}
	return removed, errors.Join(errs...)
}
