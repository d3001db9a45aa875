package httpserver_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/internal/httpserver"
)

// TestReadBodyRefusesDeclaredOversizeAtOnce: a request that declares a body over the
// limit and asks "Expect: 100-continue" gets its 413 straight away; the server never
// invites the body (no 100 Continue) and does not wait for it. Under the limit the
// client is invited and the body is read.
func TestReadBodyRefusesDeclaredOversizeAtOnce(t *testing.T) {
	t.Parallel()
	const limit = 16
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := httpserver.ReadBody(w, r, limit)
		if ok {
			_, _ = w.Write(b)
		}
	}))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name       string
		length     int
		wantFirst  string // first status line
		wantSecond string // status line after the body is sent, if invited
	}{
		{"over the limit: 413 at once", limit + 1, "HTTP/1.1 413 ", ""},
		{"far over the limit: 413 at once", 1 << 30, "HTTP/1.1 413 ", ""},
		{"at the limit: invited, then read", limit, "HTTP/1.1 100 Continue", "HTTP/1.1 200 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			head := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n" +
				"Content-Length: " + strconv.Itoa(tc.length) + "\r\n\r\n"
			if _, err := io.WriteString(c, head); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			first, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(first, tc.wantFirst) {
				t.Fatalf("first answer %q (%v), want %q", first, err, tc.wantFirst)
			}
			if tc.wantSecond == "" {
				resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(first), br)), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), `"status":413`) {
					t.Errorf("413 answer %q %s", resp.Header.Get("Content-Type"), body)
				}
				if !resp.Close {
					t.Error("the connection stays open although the announced body was never read")
				}
				return
			}
			for line := first; line != "\r\n"; line, _ = br.ReadString('\n') { // skip the 100's headers
			}
			if _, err := io.WriteString(c, strings.Repeat("x", tc.length)); err != nil {
				t.Fatal(err)
			}
			if second, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(second, tc.wantSecond) {
				t.Fatalf("after the body %q (%v), want %q", second, err, tc.wantSecond)
			}
		})
	}
}
