package live

import "net/http"

// routes is the whole API of the live page.
func (s *Server) routes(mux *http.ServeMux) {
	mux.Handle("GET /{$}", s.handleAsset("index.html"))
	mux.Handle("GET /app.js", s.handleAsset("app.js"))
	mux.Handle("GET /style.css", s.handleAsset("style.css"))
	mux.Handle("GET /events", s.handleEvents())
	mux.Handle("GET /api/run", s.handleState())
	mux.Handle("POST /api/run", s.handleStart())
	mux.Handle("POST /api/stop", s.handleStop())
}
