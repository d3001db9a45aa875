package faults

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/meshdemo/meshdemo/services/headers"
	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/problem"
)

// Admin paths, served on the admin port only.
const (
	PathSick    = "/admin/sick"
	PathHealthy = "/admin/healthy"
	PathFaults  = "/admin/faults"
)

// AdminRoutes mounts the three admin endpoints on r (the admin router). Each path
// accepts every method and answers a wrong one itself with 405 problem JSON and an
// Allow header, so the answer does not depend on the router's defaults.
func (i *Injector) AdminRoutes(r chi.Router) {
	r.Handle(PathSick, i.handleSwitch(true))
	r.Handle(PathHealthy, i.handleSwitch(false))
	r.Handle(PathFaults, i.handleFaults())
}

// AdminHandler serves the same endpoints without chi; any other path is a 404 problem.
func (i *Injector) AdminHandler() http.Handler {
	sick, healthy, faults := i.handleSwitch(true), i.handleSwitch(false), i.handleFaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathSick:
			sick.ServeHTTP(w, r)
		case PathHealthy:
			healthy.ServeHTTP(w, r)
		case PathFaults:
			faults.ServeHTTP(w, r)
		default:
			problem.Error(w, r, http.StatusNotFound, "no admin endpoint "+r.URL.Path)
		}
	})
}

// adminState is the body of every admin answer.
type adminState struct {
	Service string      `json:"service"`
	Sick    bool        `json:"sick"`
	Config  *configView `json:"config,omitempty"`
}

// configView renders durations as Go strings ("5.5s") rather than nanoseconds.
type configView struct {
	Delay         string  `json:"delay"`
	Latency       Latency `json:"latency"`
	ErrorRate     float64 `json:"error_rate"`
	ErrorCode     int     `json:"error_code"`
	SickAtStart   bool    `json:"sick_at_start"`
	SickCode      int     `json:"sick_code"`
	HeaderEnabled bool    `json:"header_enabled"`
	Header        string  `json:"header"`
	MaxDelay      string  `json:"max_delay"`
}

// handleSwitch serves POST /admin/sick and POST /admin/healthy.
func (i *Injector) handleSwitch(sick bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodPost) {
			return
		}
		i.SetSick(sick)
		httpserver.WriteJSON(w, r, http.StatusOK, adminState{Service: i.service, Sick: i.Sick()})
	})
}

// handleFaults serves GET /admin/faults: what this instance injects right now.
func (i *Injector) handleFaults() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		c := i.cfg
		httpserver.WriteJSON(w, r, http.StatusOK, adminState{Service: i.service, Sick: i.Sick(), Config: &configView{
			Delay: c.Delay.String(), Latency: c.Latency, ErrorRate: c.ErrorRate, ErrorCode: c.ErrorCode,
			SickAtStart: c.Sick, SickCode: c.SickCode, HeaderEnabled: c.HeaderEnabled, Header: headers.Fault,
			MaxDelay: c.MaxDelay.String(),
		}})
	})
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	problem.Error(w, r, http.StatusMethodNotAllowed, r.Method+" not allowed on "+r.URL.Path+"; use "+method)
	return false
}
