package grpcwire_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/meshdemo/meshdemo/services/internal/grpcwire"
)

// TestHTTPForCode pins the reverse mapping for every gRPC code (grpc-gateway's, with
// Canceled as the kit's 499).
func TestHTTPForCode(t *testing.T) {
	t.Parallel()
	want := map[codes.Code]int{
		codes.OK: 200, codes.Canceled: 499, codes.Unknown: 500, codes.InvalidArgument: 400,
		codes.DeadlineExceeded: 504, codes.NotFound: 404, codes.AlreadyExists: 409, codes.PermissionDenied: 403,
		codes.ResourceExhausted: 429, codes.FailedPrecondition: 400, codes.Aborted: 409, codes.OutOfRange: 400,
		codes.Unimplemented: 501, codes.Internal: 500, codes.Unavailable: 503, codes.DataLoss: 500,
		codes.Unauthenticated: 401,
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got := grpcwire.HTTPForCode(c); got != want[c] {
			t.Errorf("%s: %d, want %d", c, got, want[c])
		}
	}
}

// TestCodeForHTTP pins gRPC's HTTP→gRPC mapping (doc/http-grpc-status-mapping.md).
func TestCodeForHTTP(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]codes.Code{
		200: codes.OK, 400: codes.Internal, 401: codes.Unauthenticated, 403: codes.PermissionDenied,
		404: codes.Unimplemented, 429: codes.Unavailable, 502: codes.Unavailable, 503: codes.Unavailable,
		504: codes.Unavailable, 500: codes.Unknown, 418: codes.Unknown, 507: codes.Unknown,
	} {
		if got := grpcwire.CodeForHTTP(status); got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
	}
}
