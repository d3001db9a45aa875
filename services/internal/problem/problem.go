// Package problem writes every error the workloads return, as RFC 9457
// application/problem+json with the real status code, so that a mesh (retries, outlier
// detection) and a person both see what went wrong.
package problem

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
)

// ContentType is the media type of every error body.
const ContentType = "application/problem+json"

// Details is the JSON body. Upstream is set when the error is about a called service.
type Details struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Service  string `json:"service,omitempty"`
	Upstream string `json:"upstream,omitempty"`
}

// Write sends d with status d.Status (defaulting to 500). Headers are set before
// WriteHeader.
func Write(w http.ResponseWriter, d Details) {
	body := Marshal(&d)
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_, _ = w.Write(body)
}

// Marshal fills d's defaults (status 500, the status text as title, about:blank) and
// returns the body Write sends, newline included; the gRPC kit carries it in a trailer
// so the front door relays the same bytes.
func Marshal(d *Details) []byte {
	if d.Status == 0 {
		d.Status = http.StatusInternalServerError
	}
	if d.Title == "" {
		d.Title = http.StatusText(d.Status)
	}
	if d.Type == "" {
		d.Type = "about:blank"
	}
	body, err := json.Marshal(d)
	if err != nil { // cannot happen for this struct; keep a valid body anyway
		body = []byte(`{"title":"Internal Server Error","status":500}`)
	}
	return append(body, '\n')
}

// Error is the short form: a status and a detail for the request r, naming the
// service that answered when the request passed the kit's middleware.
func Error(w http.ResponseWriter, r *http.Request, status int, detail string) {
	var svc string
	if a := AnswererFrom(r.Context()); a != nil {
		svc = a.AnsweringService()
	}
	Write(w, Details{Status: status, Detail: detail, Instance: r.URL.Path, Service: svc})
}

// Answerer is what a request's context knows of the service answering it.
type Answerer interface{ AnsweringService() string }

type serviceKey struct{}

type serviceName string

func (s serviceName) AnsweringService() string { return string(s) }

// WithService records which service answers errors for this request.
func WithService(ctx context.Context, service string) context.Context {
	return WithAnswerer(ctx, serviceName(service))
}

// WithAnswerer stores a richer per-request value that also names the service; its
// owner reads it back with AnswererFrom, so one context value serves both packages.
func WithAnswerer(ctx context.Context, a Answerer) context.Context {
	return context.WithValue(ctx, serviceKey{}, a)
}

// AnswererFrom returns the value WithAnswerer or WithService stored, or nil.
func AnswererFrom(ctx context.Context) Answerer {
	a, _ := ctx.Value(serviceKey{}).(Answerer)
	return a
}
