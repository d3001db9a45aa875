// Command users benchmarks user-service on PostgreSQL (make bench-users, part of make
// bench): GET by id at 10³ and 10⁶ rows (p99 ratio), a page of 100 at both sizes, and
// user-service against a bare pgx handler running the same query on the same database
// (throughput ratio). A benchmark, not a test: it prints figures and PASS/MISS per
// target and exits 0 either way. It needs MESHDEMO_TEST_DATABASE_URL (an admin URL of a
// throw-away cluster; build/postgres/with-postgres.sh sets it).
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-users:", err)
		os.Exit(1)
	}
}

type options struct {
	bin          string
	d            time.Duration
	workers      int
	small, large int
	rounds       int
	logLevel     string
	serveBare    string // internal: serve the bare handler on this database URL
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench-users", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory holding the user-service binary")
	fs.DurationVar(&o.d, "d", 4*time.Second, "duration of each measurement")
	fs.IntVar(&o.workers, "c", 16, "concurrent closed-loop clients")
	fs.IntVar(&o.small, "small", 1000, "rows in the small table")
	fs.IntVar(&o.large, "large", 1000000, "rows in the large table")
	fs.IntVar(&o.rounds, "rounds", 3, "alternating rounds per measurement (the median is reported)")
	fs.StringVar(&o.logLevel, "log-level", "info", "user-service's LOG_LEVEL (info writes an access-log line per request)")
	fs.StringVar(&o.serveBare, "serve-bare", "", "internal: serve the bare pgx handler for this database URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.serveBare != "" {
		return serveBare(ctx, o.serveBare, out)
	}
	admin := getenv("MESHDEMO_TEST_DATABASE_URL")
	if admin == "" {
		return errors.New("MESHDEMO_TEST_DATABASE_URL is not set: run through build/postgres/with-postgres.sh (make bench-users does)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bench-users: %d workers, %s per run, %d rounds, user-service LOG_LEVEL=%s, %d CPUs, load average %s\n",
		o.workers, o.d, o.rounds, o.logLevel, runtime.NumCPU(), loadavg())

	type target struct {
		rows       int
		db         string
		users, raw *server
	}
	var targets []*target
	for _, n := range []int{o.small, o.large} {
		t0 := time.Now()
		db, err := seed(ctx, admin, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "seeded %d rows in %s\n", n, time.Since(t0).Round(time.Millisecond))
		ports, err := freePorts(2) // fixed ports: above info, user-service does not log its addresses
		if err != nil {
			return err
		}
		us, err := startServer(ctx, exec.Command(filepath.Join(o.bin, "user-service")),
			"DATABASE_URL="+db, "LISTEN_HOST=127.0.0.1", "PORT="+strconv.Itoa(ports[0]), "ADMIN_PORT="+strconv.Itoa(ports[1]),
			"DRAIN_DELAY=0s", "HOSTNAME=bench", "LOG_LEVEL="+o.logLevel)
		if err != nil {
			return err
		}
		defer us.stop()
		bare, err := startServer(ctx, exec.Command(self, "-serve-bare", db))
		if err != nil {
			return err
		}
		defer bare.stop()
		targets = append(targets, &target{rows: n, db: db, users: us, raw: bare})
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 4 * o.workers, MaxIdleConnsPerHost: 2 * o.workers, DisableCompression: true,
	}}
	byID := func(base string, rows int) func(*rand.Rand) string {
		return func(r *rand.Rand) string { return base + "/api/users/" + strconv.Itoa(1+r.IntN(rows)) }
	}
	page := func(base string, rows int) func(*rand.Rand) string {
		return func(r *rand.Rand) string {
			return base + "/api/users?limit=100&after=" + strconv.Itoa(r.IntN(rows-100))
		}
	}
	small, large := targets[0], targets[1]
	names := []string{"get-small", "get-large", "page-small", "page-large", "bare-get-large", "bare-page-large"}
	gens := map[string]func(*rand.Rand) string{
		"get-small":       byID(small.users.url, small.rows),
		"get-large":       byID(large.users.url, large.rows),
		"page-small":      page(small.users.url, small.rows),
		"page-large":      page(large.users.url, large.rows),
		"bare-get-large":  byID(large.raw.url, large.rows),
		"bare-page-large": page(large.raw.url, large.rows),
	}
	for _, n := range names { // warm up connections and caches
		load(ctx, client, gens[n], o.workers, time.Second)
	}
	results := map[string][]result{}
	for range o.rounds {
		for _, n := range names {
			results[n] = append(results[n], load(ctx, client, gens[n], o.workers, o.d))
		}
	}
	med := map[string]result{}
	fmt.Fprintf(out, "\n%-16s %10s %10s %10s %8s\n", "run", "req/s", "p50", "p99", "errors")
	for _, n := range names {
		rs := results[n]
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.rps, b.rps) })
		m := rs[len(rs)/2]
		med[n] = m
		fmt.Fprintf(out, "%-16s %10.0f %10s %10s %8d\n", n, m.rps, m.p50.Round(time.Microsecond), m.p99.Round(time.Microsecond), m.errs)
		if m.firstErr != "" {
			fmt.Fprintf(out, "  first error: %s\n", m.firstErr)
		}
	}
	getRatio := float64(med["get-large"].p99) / float64(med["get-small"].p99)
	pageRatio := float64(med["page-large"].p50) / float64(med["page-small"].p50)
	bareRatio := med["get-large"].rps / med["bare-get-large"].rps
	barePage := med["page-large"].rps / med["bare-page-large"].rps
	fmt.Fprintf(out, "\nGET by id p99, %d rows / %d rows: %.2f (target <= 1.5) %s\n", o.large, o.small, getRatio, verdict(getRatio <= 1.5))
	fmt.Fprintf(out, "page of 100 p50, %d rows / %d rows: %.2f (target: the same, <= 1.5) %s\n", o.large, o.small, pageRatio, verdict(pageRatio <= 1.5))
	fmt.Fprintf(out, "user-service / bare pgx handler, GET by id throughput: %.2f (target >= 0.8) %s\n", bareRatio, verdict(bareRatio >= 0.8))
	fmt.Fprintf(out, "user-service / bare pgx handler, page of 100 throughput: %.2f (no target)\n", barePage)
	fmt.Fprintf(out, "load average after: %s\n", loadavg())
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// seed creates a database, applies user-service's migrations and inserts n users
// with generate_series.
func seed(ctx context.Context, admin string, n int) (string, error) {
	name := fmt.Sprintf("bench_%d_%08x", n, rand.Uint32())
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	db := u.String()
	pgURL, err := userstore.ParsePostgresURL(db)
	if err != nil {
		return "", err
	}
	s, err := userstore.OpenPostgres(userstore.PostgresConfig{URL: pgURL, StatementTimeout: 5 * time.Minute})
	if err != nil {
		return "", err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return "", err
	}
	if _, err := s.Pool().Exec(ctx, `INSERT INTO users (username, version)
		SELECT 'user-' || g, CASE WHEN g % 5 = 0 THEN 'v2' ELSE 'v1' END FROM generate_series(1, $1) AS g`, n); err != nil {
		return "", err
	}
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE users`); err != nil {
		return "", err
	}
	return db, nil
}

// serveBare is the baseline: net/http and pgxpool running user-service's queries,
// with nothing else (no middleware, validation, logs or metrics).
func serveBare(ctx context.Context, db string, out io.Writer) error {
	cfg, err := pgxpool.ParseConfig(db)
	if err != nil {
		return err
	}
	cfg.MaxConns = 10 // user-service's DATABASE_MAX_CONNS default
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	type user struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
		Version  string `json:"version"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		var u user
		var rev int64
		if err := pool.QueryRow(r.Context(), `SELECT id, username, version, rev FROM users WHERE id = $1`, id).Scan(&u.ID, &u.Username, &u.Version, &rev); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		b, _ := json.Marshal(u)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/users", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		rows, _ := pool.Query(r.Context(), `SELECT id, username, version, rev FROM users WHERE id > $1 ORDER BY id LIMIT $2`, after, limit+1)
		var us []user
		for rows.Next() {
			var u user
			var rev int64
			_ = rows.Scan(&u.ID, &u.Username, &u.Version, &rev)
			us = append(us, u)
		}
		if rows.Err() != nil {
			http.Error(w, rows.Err().Error(), http.StatusInternalServerError)
			return
		}
		if len(us) > limit {
			us = us[:limit]
		}
		b, _ := json.Marshal(us)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintf(out, "{\"msg\":\"serving\",\"public\":%q}\n", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type server struct {
	cmd *exec.Cmd
	url string
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startServer runs cmd and waits until it serves: user-service (given PORT) until
// /readyz answers 200; the bare server until it logs its address.
func startServer(ctx context.Context, cmd *exec.Cmd, env ...string) (*server, error) {
	cmd.Env = append(os.Environ(), env...)
	port := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PORT="); ok {
			port = v
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "serving" {
				select {
				case addr <- m["public"].(string):
				default: // the address was known already
				}
				break
			}
		}
		// The access log goes on; draining it unparsed keeps this process from
		// spending CPU the measured server would otherwise have.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	s := &server{cmd: cmd}
	if port != "" {
		addr <- "127.0.0.1:" + port
	}
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-time.After(20 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%s did not start", cmd.Path)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.HasSuffix(cmd.Path, "user-service") {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("user-service did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errs     int
	firstErr string
}

// load runs workers closed loops for d; next picks each request's URL.
func load(ctx context.Context, c *http.Client, next func(*rand.Rand) string, workers int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lats := make([][]time.Duration, workers)
	errs := make([]int, workers)
	var firstErr sync.Map
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				u := next(r)
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("GET %s: %d", u, resp.StatusCode)
					}
				}
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					errs[i]++
					firstErr.LoadOrStore("e", err.Error())
					continue
				}
				lats[i] = append(lats[i], time.Since(start))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	var all []time.Duration
	res := result{}
	for i := range workers {
		all = append(all, lats[i]...)
		res.errs += errs[i]
	}
	if e, ok := firstErr.Load("e"); ok {
		res.firstErr = e.(string)
	}
	slices.Sort(all)
	if len(all) == 0 {
		return res
	}
	res.rps = float64(len(all)) / elapsed.Seconds()
	res.p50 = all[len(all)/2]
	res.p99 = all[min(len(all)-1, len(all)*99/100)]
	return res
}
