// Command httpbench measures the API under many concurrent connections: read
// latency (p50, p99) and requests per second of an authenticated endpoint
// (GET /auth/me: JWT check, session lookup, user lookup), beside a bare
// net/http handler in the same run, for SQLite and PostgreSQL.
//
//	go run ./bench/httpbench -conns 1000 -duration 10s [-pg postgres://...]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/novacron/novacron/internal/server"
)

func main() {
	conns := flag.Int("conns", 1000, "concurrent connections")
	duration := flag.Duration("duration", 10*time.Second, "load duration per target")
	pg := flag.String("pg", os.Getenv("NOVACRON_TEST_PG_URL"), "PostgreSQL URL (empty: SQLite only)")
	flag.Parse()

	bare := startBare()
	defer bare.Close()

	fmt.Printf("%-28s %10s %10s %10s %10s %8s\n", "target", "requests", "req/s", "p50", "p99", "errors")
	base := run("bare net/http", "http://"+bare.Addr().String()+"/", "", *conns, *duration)
	targets := []struct{ name, db string }{{"novacron sqlite /auth/me", ""}}
	if *pg != "" {
		targets = append(targets, struct{ name, db string }{"novacron postgres /auth/me", *pg})
	}
	for _, tg := range targets {
		srv, url, tok := startServer(tg.db)
		r := run(tg.name, url+"/auth/me", tok, *conns, *duration)
		fmt.Printf("%-28s ratio to bare: %.3f of its req/s, p50 x%.1f, p99 x%.1f\n", "",
			r.rps/base.rps, ratio(r.p50, base.p50), ratio(r.p99, base.p99))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = srv.Close(ctx)
		cancel()
	}
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// startBare serves a handler that answers a small JSON object and nothing else.
func startBare() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"0190a0a0-0000-7000-8000-000000000000","username":"admin","role":"admin"}`+"\n")
		}))
	}()
	return ln
}

// startServer starts a real control plane on port 0 with rate limits off
// (they are what a load test would measure otherwise) and logs discarded.
func startServer(db string) (*server.Server, string, string) {
	dir, err := os.MkdirTemp("", "novacron-bench-")
	if err != nil {
		log.Fatal(err)
	}
	pw := "bench-admin-password"
	srv, err := server.Open(context.Background(), server.Config{
		DataDir: dir, DB: db, Listen: "127.0.0.1:0", AdminPassword: pw,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := http.Post(srv.URL()+"/auth/login", "application/json",
		strings.NewReader(`{"username":"admin","password":"`+pw+`"}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var lr struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil || lr.Token == "" {
		log.Fatalf("login: %v", err)
	}
	return srv, srv.URL(), lr.Token
}

type result struct {
	n        int
	rps      float64
	p50, p99 time.Duration
}

// run drives conns keep-alive connections, one goroutine each, for d.
func run(name, url, token string, conns int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		mu      sync.Mutex
		lats    []time.Duration
		errs    atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
		started = time.Now()
	)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for !stop.Load() {
				req, _ := http.NewRequest("GET", url, nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(started)
	slices.Sort(lats)
	r := result{n: len(lats), rps: float64(len(lats)) / elapsed.Seconds()}
	if len(lats) > 0 {
		r.p50 = lats[len(lats)/2]
		r.p99 = lats[len(lats)*99/100]
	}
	fmt.Printf("%-28s %10d %10.0f %10s %10s %8d\n", name, r.n, r.rps, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), errs.Load())
	return r
}
