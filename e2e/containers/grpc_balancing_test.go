package containers

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/meshdemo/meshdemo/e2e/internal/balancing"
	"github.com/meshdemo/meshdemo/e2e/internal/dockerenv"
)

// grpcBalancingFile is the "before" picture of gRPC balancing: three server1 replicas
// behind Docker's DNS, no mesh.
const grpcBalancingFile = "build/compose/grpc-balancing.yaml"

// TestComposeGRPCPinnedHTTPSpreads starts build/compose/grpc-balancing.yaml for real (this
// run's images, a free loopback port) and shows the "before" picture:
//
//   - every gRPC call through the client (GET /client/grpc), even 8 at a time, names the same
//     server1 replica: the client holds one HTTP/2 connection (pick_first) and never re-resolves;
//   - HTTP calls one at a time name one replica too (the client's keep-alive connection);
//   - HTTP under rising concurrency names at least two replicas: new connections are dialled,
//     and each dial resolves `server1` again, which Docker's DNS answers in shuffled order.
//
// The last point is probabilistic: Go's resolver merges concurrent lookups of one name
// (singleflight), so one burst of dials shares one answer and can land on one replica. The
// test therefore raises concurrency in steps (each step dials anew) until two replicas have
// answered. A step that needs more connections than the client holds dials again, and all of
// k fresh lookups putting the first replica first again has probability (1/3)^k.
func TestComposeGRPCPinnedHTTPSpreads(t *testing.T) {
	s := need(t)
	composeCmd(t)
	project := dockerenv.ComposeProjectPrefix + strconv.Itoa(pid)
	port := freePort(t)
	env := []string{
		"COMPOSE_PROJECT_NAME=" + project,
		"MESHDEMO_IMAGE_TAG=" + s.tag,
		"MESHDEMO_GRPCDEMO_PORT=" + port,
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := composeWith(ctx, t, grpcBalancingFile, env, "logs", "--no-color")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := composeWith(ctx, t, grpcBalancingFile, env, "down", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	start := time.Now()
	if out, err := composeWith(ctx, t, grpcBalancingFile, env, "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}

	// Hardened like compose.yaml, published on loopback only (client's HTTP port alone), and
	// three server1 containers, every one answering to the name server1 on the network.
	cli := dockerClient(t)
	ctrs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil {
		t.Fatal(err)
	}
	replicas := map[string]bool{}
	for _, c := range ctrs {
		info, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		svc := info.Config.Labels["com.docker.compose.service"]
		if svc == "server1" {
			replicas[info.Config.Hostname] = true
		}
		if !info.HostConfig.ReadonlyRootfs || info.Config.User != "65532:65532" || !slices.Equal([]string(info.HostConfig.CapDrop), []string{"ALL"}) {
			t.Errorf("%s: read-only=%v user=%q cap_drop=%v", info.Name, info.HostConfig.ReadonlyRootfs, info.Config.User, info.HostConfig.CapDrop)
		}
		for p, bindings := range info.HostConfig.PortBindings {
			for _, b := range bindings {
				if svc != "client" || b.HostIP != "127.0.0.1" {
					t.Errorf("%s: %s published on %q:%s, want client's port on 127.0.0.1 only", info.Name, p, b.HostIP, b.HostPort)
				}
			}
		}
	}
	if len(replicas) != 3 {
		t.Fatalf("server1 replicas %v, want 3", replicas)
	}

	base := "http://127.0.0.1:" + port
	hc := balancing.NewHTTPClient(64)
	// Ready through the whole chain; over gRPC, so no HTTP connection to server1 exists yet.
	for {
		if _, err = balancing.Tally(ctx, hc, base+"/client/grpc", "server1", 1, 1); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("client never answered 200 on /client/grpc: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("compose up → first gRPC answer through the chain after %s", time.Since(start).Round(time.Millisecond))

	check := func(c balancing.Counts) {
		t.Helper()
		for inst := range c {
			if !replicas[inst] {
				t.Errorf("instance %s answered, not one of the server1 replicas %v", inst, replicas)
			}
		}
	}
	grpcCounts, err := balancing.Tally(ctx, hc, base+"/client/grpc", "server1", 100, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gRPC /client/grpc     100 calls, concurrency 8: %s", grpcCounts)
	check(grpcCounts)
	if len(grpcCounts) != 1 {
		t.Errorf("gRPC calls reached server1 replicas %s, want all on one (one pinned connection)", grpcCounts)
	}

	seq, err := balancing.Tally(ctx, hc, base+"/client/server1", "server1", 30, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HTTP /client/server1   30 calls, one at a time:  %s", seq)
	check(seq)
	if len(seq) != 1 {
		t.Errorf("sequential HTTP calls reached server1 replicas %s, want one (one keep-alive connection)", seq)
	}

	seen := balancing.Counts{}
	for _, conc := range []int{4, 8, 16, 32, 64, 96, 128} { // each step dials anew: 7 fresh lookups, (1/3)^7 < 0.05 % to see one replica only
		c, err := balancing.Tally(ctx, hc, base+"/client/server1", "server1", 4*conc, conc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("HTTP /client/server1  %3d calls, concurrency %2d: %s", 4*conc, conc, c)
		check(c)
		for k, v := range c {
			seen[k] += v
		}
		if len(seen) >= 2 {
			break
		}
	}
	if len(seen) < 2 {
		t.Errorf("concurrent HTTP calls reached only %s, want at least two server1 replicas", seen)
	}
}
