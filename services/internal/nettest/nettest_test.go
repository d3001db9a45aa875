package nettest_test

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/nettest"
)

// The URL refuses connections, and its port stays taken: no listener can bind it meanwhile.
func TestRefusedURL(t *testing.T) {
	t.Parallel()
	url := nettest.RefusedURL(t)
	addr := strings.TrimPrefix(url, "http://")
	client := &http.Client{Timeout: 2 * time.Second}
	if _, err := client.Get(url); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET %s: %v, want connection refused", url, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("listening on %s succeeded while the test holds it", addr)
	}
}
