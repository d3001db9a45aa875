package httpserver

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/meshdemo/meshdemo/services/internal/problem"
)

// WriteJSON answers code with v as a JSON body (newline-terminated, with its length);
// a value that cannot be encoded becomes a 500 problem instead.
func WriteJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Error(w, r, http.StatusInternalServerError, "encoding response: "+err.Error())
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
