package grpcserver_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"

	"github.com/meshdemo/meshdemo/services/internal/httpserver"
	"github.com/meshdemo/meshdemo/services/internal/kittest"
	chainv1 "github.com/meshdemo/meshdemo/services/proto/meshdemo/chain/v1"
)

// TestStreamLimitEnforced: the server advertises SETTINGS_MAX_CONCURRENT_STREAMS and
// refuses (REFUSED_STREAM) the streams of a caller that ignores it, rather than
// accepting them all (a raw HTTP/2 client opens half as many again as allowed, each a
// Chain/Call that never sends its message, so each stays in flight).
func TestStreamLimitEnforced(t *testing.T) {
	t.Parallel()
	addr := kittest.GRPC(t, kittest.Default(t, "server1"), func(s *grpc.Server) { chainv1.RegisterChainServer(s, &end{}) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var advertised uint32
	for advertised == 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's settings: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
			if !ok {
				t.Fatal("no SETTINGS_MAX_CONCURRENT_STREAMS advertised")
			}
			advertised = v
			_ = fr.WriteSettingsAck()
		}
	}
	if advertised != httpserver.MaxStreams {
		t.Fatalf("advertised %d streams, want %d", advertised, httpserver.MaxStreams)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/meshdemo.chain.v1.Chain/Call"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	opened := int(advertised) * 3 / 2
	for i := range opened {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	refused := 0
	for refused < opened-int(advertised) {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d refusals: %v", refused, err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.ErrCode != http2.ErrCodeRefusedStream || rst.StreamID <= 2*advertised {
				t.Fatalf("stream %d reset with %s; want REFUSED_STREAM only beyond the first %d", rst.StreamID, rst.ErrCode, advertised)
			}
			refused++
		}
	}
}
