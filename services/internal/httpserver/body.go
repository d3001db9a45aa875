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
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
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
