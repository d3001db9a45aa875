// Package grpcwire is what both ends of a meshdemo gRPC hop agree on: the metadata keys
// that carry the path header and the HTTP view of an answer, the status mappings, and
// the Reply an outbound call leaves for the inbound call that made it.
//
// Each hop answers in trailer metadata (trailers arrive on success and on error alike):
//
//	x-meshdemo-path          the hops from this one to the end, pathheader format
//	x-meshdemo-status        the HTTP status the same answer has over HTTP (200, 503, 504, ...)
//	x-meshdemo-problem-bin   on error, the problem+json body the HTTP chain would relay
//
// so the front door (GET /client/grpc) answers exactly what GET /client/server1 answers.
package grpcwire

import (
	"context"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Trailer keys (lower case, as gRPC metadata is).
const (
	PathKey    = "x-meshdemo-path"
	StatusKey  = "x-meshdemo-status"
	ProblemKey = "x-meshdemo-problem-bin"
)

// CodeForHTTP is the gRPC code of an HTTP status, per gRPC's
// doc/http-grpc-status-mapping.md (what a gRPC client sees when a proxy answers HTTP).
func CodeForHTTP(status int) codes.Code {
	switch status {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest:
		return codes.Internal
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	}
	return codes.Unknown
}

// HTTPForCode is the HTTP status for a gRPC code when no hop said which one (an
// upstream that is not meshdemo, or a transport failure): the usual reverse mapping
// (grpc-gateway's), with Canceled as 499 like the HTTP kit.
func HTTPForCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Reply is what an upstream answered in its trailer; the outbound interceptor fills it
// for the inbound call (or the HTTP front door) that made the call.
type Reply struct {
	Path    string // the upstream's hops, pathheader format ("" if it sent none)
	Status  int    // its HTTP status (0 if it sent none)
	Problem []byte // its problem+json body, on error
}

// Fill reads a trailer into r.
func (r *Reply) Fill(tr metadata.MD) {
	if v := tr.Get(PathKey); len(v) > 0 {
		r.Path = v[0]
	}
	if v := tr.Get(StatusKey); len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n >= 100 && n <= 999 {
			r.Status = n
		}
	}
	if v := tr.Get(ProblemKey); len(v) > 0 {
		r.Problem = []byte(v[0])
	}
}

type replyKey struct{}

// WithReply returns a context whose outbound gRPC call records its Reply in *Reply.
func WithReply(ctx context.Context) (context.Context, *Reply) {
	r := &Reply{}
	return context.WithValue(ctx, replyKey{}, r), r
}

// ReplyFrom returns the Reply WithReply stored, or nil.
func ReplyFrom(ctx context.Context) *Reply {
	r, _ := ctx.Value(replyKey{}).(*Reply)
	return r
}

// HTTPError is an error that knows the HTTP answer the same failure gets over HTTP
// (an injected fault, an upstream's relayed error, a transport failure); the server
// interceptor puts it in the trailer and the front door answers it.
type HTTPError interface {
	error
	HTTPStatus() int
	ProblemJSON() []byte // nil when nothing is to be written (caller went away)
}

// Error is the one HTTPError of the kit: a gRPC status with the HTTP status and problem
// the same failure gets over HTTP (an injected fault on the server side, an upstream's
// answer or a transport failure on the client side).
type Error struct {
	st      *status.Status
	code    int
	problem []byte
}

// NewError pairs a gRPC status with its HTTP answer; problem may be nil (499).
func NewError(st *status.Status, code int, problem []byte) *Error {
	return &Error{st: st, code: code, problem: problem}
}

func (e *Error) Error() string              { return e.st.Err().Error() }
func (e *Error) GRPCStatus() *status.Status { return e.st }
func (e *Error) HTTPStatus() int            { return e.code }
func (e *Error) ProblemJSON() []byte        { return e.problem }
