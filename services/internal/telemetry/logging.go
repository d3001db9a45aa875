package telemetry

import (
	"io"
	"log/slog"
)

// NewLogger writes JSON lines tagged with the workload's identity.
func NewLogger(w io.Writer, level slog.Level, service, version, instance string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("service", service, "version", version, "instance", instance)
}
