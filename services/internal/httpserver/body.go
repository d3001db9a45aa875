package httpserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/meshdemo/meshdemo/services/internal/problem"
)

// ReadBody reads the whole request body, at most limit bytes. A larger body gets 413,
// a failed read 400; both are written here and ReadBody returns false, so the caller
// only has to stop.
//
// A body whose Content-Length is already over the limit is refused before it is
// touched: net/http sends "100 Continue" on the first read of a body that asked for
// it, so reading would invite the very upload being refused. Unread, the connection
// is closed after the 413 (net/http does that by itself).
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if r.ContentLength > limit {
		problem.Error(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes (Content-Length %d)", limit, r.ContentLength))
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return b, true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		problem.Error(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", limit))
	} else {
		problem.Error(w, r, http.StatusBadRequest, "reading body: "+err.Error())
	}
	return nil, false
}
