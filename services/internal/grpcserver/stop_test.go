package grpcserver_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/meshdemo/meshdemo/services/internal/health"
)

// TestStopEndsLongLivedStreams: an open health Watch and an open reflection stream do
// not hold a stop until its deadline. Watch sees NOT_SERVING when draining begins; at
// Shutdown both streams end (UNAVAILABLE) and the server stops cleanly at once.
func TestStopEndsLongLivedStreams(t *testing.T) {
	t.Parallel()
	srv, ln := endServer(t)
	srv.SetPhase(health.Ready)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	conn := dial(t, ln.Addr().String())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", r, err)
	}
	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := refl.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := refl.Recv(); err != nil {
		t.Fatal(err)
	}

	srv.SetPhase(health.Draining)
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch while draining: %v %v", r, err)
	}
	const deadline = 5 * time.Second // the bound a stuck stop would use up
	sctx, scancel := context.WithTimeout(context.Background(), deadline)
	defer scancel()
	start := time.Now()
	err = srv.Shutdown(sctx)
	took := time.Since(start)
	if err != nil || took > 2*time.Second {
		t.Fatalf("Shutdown with a Watch and a reflection stream open: %v after %s, want nil well under %s", err, took, deadline)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := watch.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("watch after stop: %v, want UNAVAILABLE", err)
	}
	if _, err := refl.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("reflection after stop: %v, want UNAVAILABLE", err)
	}
}
