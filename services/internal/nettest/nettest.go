// Package nettest holds network helpers for tests, with no dependency on the kit.
package nettest

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// RefusedURL is an http:// URL on loopback where every connection is refused for as long as the
// test runs: a TCP socket bound to a port but never listening, closed at the test's end. The
// port of a closed listener is not enough: servers of parallel tests bind port 0, and the kernel
// may hand them that very port (it did, under load: the "down" upstream of one test was another
// test's server, answering 404).
func RefusedURL(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s accepted a connection, want it refused", addr)
	}
	return "http://" + addr
}
