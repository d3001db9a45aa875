package main

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/meshdemo/meshdemo/services/internal/workload"
)

// endBody is what the whole chain returns. The identity fields let a caller see which
// version of server2 answered without reading headers.
type endBody struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Service   string `json:"service"`
	Version   string `json:"version"`
	Instance  string `json:"instance"`
}

func handleEnd(k *workload.Kit) http.Handler {
	body, err := json.Marshal(endBody{
		FirstName: "Mick", LastName: "Chung",
		Service: k.Common.ServiceName, Version: k.Common.ServiceVersion, Instance: k.Common.Instance,
	})
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", length)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}
