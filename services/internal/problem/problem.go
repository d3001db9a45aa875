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
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_, _ = w.Write(body)
}

// Error is the short form: a status and a detail for the request r, naming the
// service that answered when the request passed the kit's middleware.
func Error(w http.ResponseWriter, r *http.Request, status int, detail string) {
	svc, _ := r.Context().Value(serviceKey{}).(string)
	Write(w, Details{Status: status, Detail: detail, Instance: r.URL.Path, Service: svc})
}

type serviceKey struct{}

// WithService records which service answers errors for this request.
func WithService(ctx context.Context, service string) context.Context {
	return context.WithValue(ctx, serviceKey{}, service)
}
