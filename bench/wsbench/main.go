// Command wsbench measures WS /ws/monitoring holding many connections: the
// server's memory per connection and the delivery latency of an event
// (publish on the server's bus → a client has read it), beside a bare
// coder/websocket server in the same run that fans the same messages out
// to the same number of connections (a goroutine and a bounded channel per
// connection, no authentication, filtering, JSON encoding per client,
// pings or audit).
//
// The server runs in this process; the clients run in a child process (this
// program again, with -client), so that the memory measured is the server's
// alone.
//
//	go run ./bench/wsbench -conns 1000 -events 100 -interval 50ms
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron/bench/internal/benchkit"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/server"
)

func main() {
	conns := flag.Int("conns", 1000, "WebSocket connections held")
	nEvents := flag.Int("events", 100, "events published")
	interval := flag.Duration("interval", 50*time.Millisecond, "time between two events")
	client := flag.Bool("client", false, "(internal) run the clients: -url, -token, -conns, -events")
	url := flag.String("url", "", "(internal) the stream's URL")
	token := flag.String("token", "", "(internal) the bearer token")
	flag.Parse()
	raiseFileLimit()
	if *client {
		runClients(*url, *token, *conns, *nEvents)
		return
	}

	fmt.Printf("%d connections, %d events %s apart, GOMAXPROCS %d\n\n", *conns, *nEvents, *interval, runtime.GOMAXPROCS(0))
	fmt.Printf("%-30s %14s %14s %12s %10s %10s %10s %8s\n", "target", "RSS/conn", "heap/conn", "goroutines", "p50", "p99", "max", "missed")

	bare := startBare()
	b := measure("bare coder/websocket fan-out", "ws://"+bare.addr+"/", "", *conns, *nEvents, *interval, bare.publish, bare.hc)
	bare.close()

	srv, dir, tok := startServer()
	defer os.RemoveAll(dir)
	publish := func(seq int) {
		srv.Events().Publish(events.Event{Type: events.TypeMetrics,
			Data: map[string]any{"seq": seq, "sent_ns": time.Now().UnixNano()}})
	}
	n := measure("novacron /ws/monitoring", "ws"+strings.TrimPrefix(srv.URL(), "http")+"/ws/monitoring", tok,
		*conns, *nEvents, *interval, publish, http.DefaultClient)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = srv.Close(ctx)
	cancel()

	fmt.Printf("\nnovacron / bare: RSS per connection x%.2f, heap per connection x%.2f, delivery p50 x%.2f, p99 x%.2f\n",
		div(n.rss, b.rss), div(n.heap, b.heap), div(float64(n.p50), float64(b.p50)), div(float64(n.p99), float64(b.p99)))
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// raiseFileLimit lifts the soft limit of open files to the hard one: each
// connection is a descriptor.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

type figures struct {
	rss, heap     float64 // bytes per connection
	goroutines    float64 // per connection
	p50, p99, max time.Duration
	missed        int
}

// report is what the client process prints when it is done.
type report struct {
	Latencies []time.Duration `json:"latencies"`
	Missed    int             `json:"missed"`
}

// measure starts the clients, measures this process's memory before and
// with the connections open, publishes the events and reads the clients'
// latencies.
func measure(name, url, token string, conns, nEvents int, interval time.Duration, publish func(seq int), hc *http.Client) figures {
	rss0, heap0, g0 := benchkit.SelfMemory(hc)
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(self, "-client", "-url", url, "-token", token, "-conns", fmt.Sprint(conns), "-events", fmt.Sprint(nEvents))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "connected" {
		log.Fatalf("%s: clients: %q %v", name, line, err)
	}
	time.Sleep(time.Second) // for the server to settle every session
	rss1, heap1, g1 := benchkit.SelfMemory(hc)
	for i := range nEvents {
		publish(i)
		time.Sleep(interval)
	}
	rest, err := io.ReadAll(out)
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		log.Fatalf("%s: clients: %v", name, err)
	}
	var r report
	if err := json.Unmarshal(rest, &r); err != nil {
		log.Fatalf("%s: clients' report: %v: %.200s", name, err, rest)
	}
	slices.Sort(r.Latencies)
	f := figures{
		rss:        float64(rss1-rss0) / float64(conns),
		heap:       (float64(heap1) - float64(heap0)) / float64(conns),
		goroutines: float64(g1-g0) / float64(conns),
		p50:        benchkit.Pct(r.Latencies, 50),
		p99:        benchkit.Pct(r.Latencies, 99),
		missed:     r.Missed,
	}
	if len(r.Latencies) > 0 {
		f.max = r.Latencies[len(r.Latencies)-1]
	}
	fmt.Printf("%-30s %11.1f KiB %11.1f KiB %12.1f %10s %10s %10s %8d\n", name, f.rss/1024, f.heap/1024, f.goroutines,
		benchkit.Round(f.p50), benchkit.Round(f.p99), benchkit.Round(f.max), f.missed)
	return f
}

// runClients opens conns streams, prints "connected", reads nEvents events
// on each (or until a minute passes without one) and prints a report.
func runClients(url, token string, conns, nEvents int) {
	ctx := context.Background()
	var (
		mu     sync.Mutex
		lats   = make([]time.Duration, 0, conns*nEvents)
		missed int
		ready  sync.WaitGroup
		done   sync.WaitGroup
	)
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0}}
	sem := make(chan struct{}, 32) // dials at once
	for i := range conns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			opts := &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{}}
			if token != "" {
				opts.HTTPHeader.Set("Authorization", "Bearer "+token)
			}
			sem <- struct{}{}
			var c *websocket.Conn
			var err error
			for try := 0; try < 5; try++ {
				dctx, cancel := context.WithTimeout(ctx, time.Minute)
				c, _, err = websocket.Dial(dctx, url, opts)
				cancel()
				if err == nil {
					break
				}
				time.Sleep(time.Second)
			}
			<-sem
			ready.Done()
			if err != nil {
				log.Fatalf("client %d: %v", i, err)
			}
			defer c.CloseNow()
			local := make([]time.Duration, 0, nEvents)
			for len(local) < nEvents {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				_, b, err := c.Read(rctx)
				now := time.Now().UnixNano()
				cancel()
				if err != nil {
					break
				}
				var m struct {
					SentNS int64 `json:"sent_ns"`
					Data   struct {
						SentNS int64 `json:"sent_ns"`
					} `json:"data"`
				}
				if json.Unmarshal(b, &m) != nil {
					continue
				}
				sent := max(m.SentNS, m.Data.SentNS)
				local = append(local, time.Duration(now-sent))
			}
			mu.Lock()
			lats = append(lats, local...)
			missed += nEvents - len(local)
			mu.Unlock()
		}()
	}
	ready.Wait()
	fmt.Println("connected")
	done.Wait()
	if err := json.NewEncoder(os.Stdout).Encode(report{Latencies: lats, Missed: missed}); err != nil {
		log.Fatal(err)
	}
}

// bareServer is the baseline: a coder/websocket server that fans messages
// out to every connection through a bounded channel and a goroutine each.
type bareServer struct {
	addr  string
	ln    net.Listener
	hc    *http.Client
	mu    sync.Mutex
	conns map[chan []byte]struct{}
}

func startBare() *bareServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	s := &bareServer{addr: ln.Addr().String(), ln: ln, hc: http.DefaultClient, conns: map[chan []byte]struct{}{}}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			ch := make(chan []byte, 128)
			s.mu.Lock()
			s.conns[ch] = struct{}{}
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				delete(s.conns, ch)
				s.mu.Unlock()
			}()
			ctx := c.CloseRead(r.Context())
			for {
				select {
				case b := <-ch:
					if err := c.Write(ctx, websocket.MessageText, b); err != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}))
	}()
	return s
}

func (s *bareServer) publish(seq int) {
	b, _ := json.Marshal(map[string]any{"type": "metrics", "data": map[string]any{"seq": seq, "sent_ns": time.Now().UnixNano()}})
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.conns {
		select {
		case ch <- b:
		default:
		}
	}
}

func (s *bareServer) close() { s.ln.Close() }

// startServer starts a real control plane on port 0 (no rate limits, logs
// discarded) and returns it with an admin's token.
func startServer() (srv *server.Server, dir, token string) {
	dir, err := os.MkdirTemp("", "novacron-wsbench-")
	if err != nil {
		log.Fatal(err)
	}
	pw := "bench-admin-password"
	srv, err = server.Open(context.Background(), server.Config{
		DataDir: dir, Listen: "127.0.0.1:0", AdminPassword: pw,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	c := &benchkit.Client{Base: srv.URL(), HC: http.DefaultClient}
	if err := c.Login(context.Background(), pw); err != nil {
		log.Fatalf("login: %v", err)
	}
	return srv, dir, c.Token
}
