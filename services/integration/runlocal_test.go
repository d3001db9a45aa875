package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
)

// TestRunLocalStopUnderLoad runs build/run-local.sh (what `make run` runs) with the
// binaries TestMain built, puts a bounded loopback load on the front door, stops the
// script the two ways a person does, and asserts that no request the client accepted
// failed: the client is stopped (and drained) first, and server1, server2 and
// user-service only once it has exited.
//
// Every request sleeps 50ms in the client (a fault directive) before it calls
// server1, so requests are in flight at the front door when the signal lands. A
// connection refused or reset once the client's listener has closed is a request
// that was never accepted; any HTTP answer other than 200 is a failure.
func TestRunLocalStopUnderLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		env   []string
		group bool // signal the script's whole process group, as a terminal's Ctrl-C does
		sig   syscall.Signal
	}{
		{"SIGTERM to the script, with a drain pause", []string{"DRAIN_DELAY=300ms"}, false, syscall.SIGTERM},
		{"Ctrl-C: SIGINT to the process group", nil, true, syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, adminBase, grpcBase := freePortBlock(t)
			cmd := exec.Command("bash", "../../build/run-local.sh")
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "BIN=" + binDir,
				"PORT_BASE=" + strconv.Itoa(base), "ADMIN_PORT_BASE=" + strconv.Itoa(adminBase),
				"GRPC_PORT_BASE=" + strconv.Itoa(grpcBase)}, tc.env...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Stdout = io.Discard // the workloads' JSON logs
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			up := make(chan struct{})
			var errLines strings.Builder
			go func() {
				sc := bufio.NewScanner(stderr)
				once := sync.Once{}
				for sc.Scan() {
					errLines.WriteString(sc.Text() + "\n")
					if strings.Contains(sc.Text(), "meshdemo is up") {
						once.Do(func() { close(up) })
					}
				}
				exited <- cmd.Wait()
			}()
			t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
			select {
			case <-up:
			case err := <-exited:
				t.Fatalf("run-local.sh exited before it was up: %v\n%s", err, errLines.String())
			case <-time.After(20 * time.Second):
				t.Fatalf("run-local.sh not up after 20s\n%s", errLines.String())
			}

			url := fmt.Sprintf("http://127.0.0.1:%d/client/server1", base)
			httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			var signalled atomic.Bool
			var ok, okAfter, notAccepted atomic.Int64
			var mu sync.Mutex
			var failures []string
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						req, _ := http.NewRequest(http.MethodGet, url, nil)
						req.Header.Set(headers.Fault, "client=delay:50ms")
						after := signalled.Load()
						resp, err := httpc.Do(req)
						if err != nil {
							// Read the flag again: a request begun just before the signal
							// may dial after the front door closed (refused: never accepted).
							after = after || signalled.Load()
							if after && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)) {
								notAccepted.Add(1)
								time.Sleep(20 * time.Millisecond)
								continue
							}
							mu.Lock()
							failures = append(failures, fmt.Sprintf("transport error (signalled %v): %v", after, err))
							mu.Unlock()
							continue
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							mu.Lock()
							failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, body))
							mu.Unlock()
							continue
						}
						ok.Add(1)
						if signalled.Load() {
							okAfter.Add(1)
						}
					}
				})
			}

			time.Sleep(700 * time.Millisecond)
			pid := cmd.Process.Pid
			if tc.group {
				pid = -pid
			}
			signalled.Store(true)
			if err := syscall.Kill(pid, tc.sig); err != nil {
				t.Fatal(err)
			}
			var exitErr error
			select {
			case exitErr = <-exited:
			case <-time.After(20 * time.Second):
				t.Errorf("run-local.sh still running 20s after %s", tc.sig)
			}
			close(stop)
			wg.Wait()

			t.Logf("%d answered 200 (%d completed after the signal), %d refused once the front door had closed; script exit: %v",
				ok.Load(), okAfter.Load(), notAccepted.Load(), exitErr)
			if len(failures) > 0 {
				t.Errorf("%d accepted requests failed, first: %s\n%s", len(failures), failures[0], errLines.String())
			}
			if ok.Load() == 0 || okAfter.Load() == 0 {
				t.Errorf("the load did not overlap the stop (%d ok, %d after the signal)", ok.Load(), okAfter.Load())
			}
			// All four are gone when the script returns.
			for _, p := range []int{base, base + 1, base + 2, base + 3, adminBase, adminBase + 1, adminBase + 2, adminBase + 3} {
				if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
					c.Close()
					t.Errorf("port %d still served after the script exited", p)
				}
			}
		})
	}
}

// freePortBlock finds four consecutive free loopback ports for the public side, four
// for the admin side and three for gRPC (run-local.sh numbers the workloads from a base).
func freePortBlock(t *testing.T) (int, int, int) {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(20000)
		admin, grpcBase := base+1000, base+2000
		var lns []net.Listener
		free := true
		for _, p := range []int{base, base + 1, base + 2, base + 3, admin, admin + 1, admin + 2, admin + 3, grpcBase, grpcBase + 1, grpcBase + 2} {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				free = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if free {
			return base, admin, grpcBase
		}
	}
	t.Fatal("no free block of loopback ports")
	return 0, 0, 0
}
