// Command metricsbench measures NovaCron's metrics storage on synthetic
// data, on SQLite and, with -pg, on PostgreSQL:
//
//   - Bulk ingest: -vms VMs and their node sampled every -interval over
//     -days days, written through the metrics service (monitor.Write) a day
//     of samples per transaction, as a backlog would arrive: samples per
//     second.
//   - Disk: the bytes of the metric tables (vm_metrics, system_metrics,
//     vm_metrics_latest and their indexes: SQLite's dbstat, PostgreSQL's
//     pg_total_relation_size after VACUUM) per VM sample stored, against
//     a budget of 29 bytes (a quarter of 1 GB a month for 100 VMs at 30 s).
//   - Steady ingest: rounds of one sample of every VM and of the host, as
//     the agent pushes them, queued through monitor.Ingest while earlier
//     ones are written (the writer takes several queued rounds in one
//     transaction), and, apart, one round per transaction: samples per
//     second.
//   - Queries: one random VM over the last 24 h and the last 30 days
//     with the default step (2 minutes from raw chunks; an hour from hourly
//     averages), and the last hour raw, each -queries times, through the
//     service and through the HTTP API of a server opened on the same
//     database (GET /api/vm/vms/{id}/metrics, loopback, admin token, the
//     body read but not decoded), beside GET /api/vm/vms/{id}: p50 and p99. The same 24 h query is then timed again while rounds are
//     ingested beside it, and the ingest rate during the queries reported.
//
// The synthetic VMs' usage drifts (CPU a random walk, memory slower),
// their network and disk rates are noisy around a per-VM level, and disk
// usage is not measured (null), as for process guests. Noise costs bytes:
// smoother real series compress better.
//
//	go run ./bench/metricsbench [-vms 100] [-days 30] [-interval 30s] [-queries 200] [-pg postgres://…]
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/bench/internal/benchkit"
	"github.com/novacron/novacron/internal/monitor"
	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/store/postgres"
	"github.com/novacron/novacron/internal/store/sqlite"
)

var (
	nVMs     = flag.Int("vms", 100, "VMs")
	days     = flag.Int("days", 30, "days of samples")
	interval = flag.Duration("interval", 30*time.Second, "sampling interval")
	queries  = flag.Int("queries", 200, "queries of each kind")
	pgURL    = flag.String("pg", "", "PostgreSQL server URL; a database is created on it for the run and dropped after")
	steady   = flag.Int("steady-rounds", 240, "rounds of the steady ingest")
	cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the API queries to this file")
)

const adminPassword = "metricsbench-admin-password"

type store interface {
	monitor.Store
	novacron.Store
	novacron.VMStore
	Close() error
}

type result struct {
	name                        string
	samples                     int64
	bulkRate                    float64
	bytes, bytesBeforeVacuum    int64
	queuedRate, roundRate       float64
	svc24, svc30, svc1h         []time.Duration
	http24, http30, http1h      []time.Duration
	httpVM                      []time.Duration
	mixed24                     []time.Duration
	mixedRate                   float64
	points24, points30, points1 int
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()
	var results []result

	dir, err := os.MkdirTemp("", "metricsbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "novacron.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	r := run(ctx, "SQLite", st, "sqlite:"+path, func() (int64, int64) { return sqliteBytes(path) }, filepath.Join(dir, "sqlite-data"))
	results = append(results, r)

	if *pgURL != "" {
		dbURL, drop := pgDatabase(ctx, *pgURL)
		defer drop()
		pst, err := postgres.Open(ctx, dbURL, 8)
		if err != nil {
			log.Fatal(err)
		}
		r := run(ctx, "PostgreSQL", pst, dbURL, func() (int64, int64) { return pgBytes(dbURL) }, filepath.Join(dir, "pg-data"))
		results = append(results, r)
	}
	report(results)
}

// vmState is a synthetic VM's current usage.
type vmState struct {
	id                  string
	cpu, mem, net, iops float64
}

func (v *vmState) next(r *rand.Rand, ts time.Time) novacron.VMSample {
	v.cpu = math.Max(0, math.Min(100, v.cpu+r.NormFloat64()*3))
	v.mem = math.Max(0, math.Min(100, v.mem+r.NormFloat64()*0.2))
	sent := math.Max(0, v.net*(1+0.3*r.NormFloat64()))
	recv := math.Max(0, 2*v.net*(1+0.3*r.NormFloat64()))
	iops := math.Max(0, v.iops*(1+0.3*r.NormFloat64()))
	cpu, mem := v.cpu, v.mem
	return novacron.VMSample{VMID: v.id, VMPoint: novacron.VMPoint{TS: ts, CPUUsage: &cpu, MemoryUsage: &mem,
		NetworkSent: &sent, NetworkRecv: &recv, IOPS: &iops}}
}

func host(r *rand.Rand, ts time.Time) *novacron.HostPoint {
	f := func(v float64) *float64 { return &v }
	return &novacron.HostPoint{TS: ts, CPUUsage: f(30 + 10*r.Float64()), MemoryUsage: f(60 + r.Float64()),
		MemoryTotal: f(24 << 30), MemoryAvailable: f(float64(9<<30 + r.IntN(1<<28))), DiskUsage: f(40),
		DiskTotal: f(500 << 30), DiskAvailable: f(300 << 30), NetworkSent: f(1e6 * r.Float64()), NetworkRecv: f(2e6 * r.Float64()),
		LoadAverage1: f(r.Float64() * 4), LoadAverage5: f(2), LoadAverage15: f(2)}
}

func run(ctx context.Context, name string, st store, db string, bytesOf func() (int64, int64), dataDir string) result {
	res := result{name: name}
	log.Printf("%s: %d VMs, %d days at %v", name, *nVMs, *days, *interval)
	tn := &novacron.Tenant{Name: "bench"}
	must(st.CreateTenant(ctx, tn))
	node := &novacron.Node{Name: "bench-node", Status: novacron.NodeOnline}
	must(st.UpsertNode(ctx, node))
	r := rand.New(rand.NewPCG(1, 2))
	vms := make([]*vmState, *nVMs)
	for i := range vms {
		vm := &novacron.VM{Name: fmt.Sprintf("vm%03d", i), Driver: novacron.DriverProcess, TenantID: tn.ID, CPUs: 1, MemoryMB: 512}
		must(st.CreateVM(ctx, vm, &novacron.Operation{Action: string(novacron.ActionCreate)}))
		vms[i] = &vmState{id: vm.ID, cpu: r.Float64() * 60, mem: 20 + r.Float64()*60, net: 1e3 + r.Float64()*1e5, iops: 1 + r.Float64()*100}
	}

	end := time.Now().UTC().Truncate(time.Minute)
	start := end.Add(-time.Duration(*days) * 24 * time.Hour)
	var clock atomic.Int64
	clock.Store(end.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	svc := monitor.New(st, monitor.Config{Interval: *interval, Retention: time.Duration(*days+1) * 24 * time.Hour, Now: now,
		QueueSize: 4096})

	// Bulk: a day of rounds per write.
	t0 := time.Now()
	for day := start; day.Before(end); day = day.Add(24 * time.Hour) {
		var bs []monitor.Batch
		for ts := day; ts.Before(end) && ts.Before(day.Add(24*time.Hour)); ts = ts.Add(*interval) {
			b := monitor.Batch{NodeID: node.ID, Host: host(r, ts), VMs: make([]novacron.VMSample, len(vms))}
			for i, v := range vms {
				b.VMs[i] = v.next(r, ts)
			}
			bs = append(bs, b)
			res.samples += int64(len(vms))
		}
		if _, _, err := svc.Write(ctx, bs); err != nil {
			log.Fatalf("write: %v", err)
		}
	}
	res.bulkRate = float64(res.samples) / time.Since(t0).Seconds()
	log.Printf("%s: bulk ingest of %d VM samples: %.0f/s", name, res.samples, res.bulkRate)
	res.bytes, res.bytesBeforeVacuum = bytesOf()
	log.Printf("%s: %d bytes of metric tables, %.1f per VM sample", name, res.bytes, float64(res.bytes)/float64(res.samples))

	// Steady: rounds queued through Ingest, then one round per write, after
	// the end of the bulk data.
	ts := end
	round := func() monitor.Batch {
		ts = ts.Add(*interval)
		clock.Store(ts.UnixNano())
		b := monitor.Batch{NodeID: node.ID, Host: host(r, ts), VMs: make([]novacron.VMSample, len(vms))}
		for i, v := range vms {
			b.VMs[i] = v.next(r, ts)
		}
		return b
	}
	t0 = time.Now()
	for range *steady {
		b := round()
		for {
			err := svc.Ingest(ctx, b)
			if err == nil {
				break
			}
			if !novacron.IsCode(err, novacron.EUnavailable) {
				log.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	must(svc.Flush(ctx))
	res.queuedRate = float64(*steady*len(vms)) / time.Since(t0).Seconds()
	t0 = time.Now()
	for range *steady / 4 {
		if _, _, err := svc.Write(ctx, []monitor.Batch{round()}); err != nil {
			log.Fatal(err)
		}
	}
	res.roundRate = float64(*steady/4*len(vms)) / time.Since(t0).Seconds()
	log.Printf("%s: steady ingest: %.0f samples/s queued, %.0f/s a round per transaction", name, res.queuedRate, res.roundRate)
	dataEnd := ts

	// Queries through the service.
	q := func(from time.Duration, out *[]time.Duration, points *int) {
		vm := vms[r.IntN(len(vms))].id
		t := time.Now()
		qq, err := svc.Resolve(monitor.Query{From: dataEnd.Add(-from), To: dataEnd})
		must(err)
		ps, err := svc.QueryVM(ctx, novacron.AllTenants, vm, qq)
		must(err)
		*out = append(*out, time.Since(t))
		*points = len(ps)
	}
	for range *queries {
		q(24*time.Hour, &res.svc24, &res.points24)
		q(time.Duration(*days)*24*time.Hour, &res.svc30, &res.points30)
		q(time.Hour, &res.svc1h, &res.points1)
	}
	log.Printf("%s: service queries p99: 24h %v (%d points), %dd %v (%d points), 1h %v (%d points)", name,
		benchkit.Round(p(res.svc24, 99)), res.points24, *days, benchkit.Round(p(res.svc30, 99)), res.points30,
		benchkit.Round(p(res.svc1h, 99)), res.points1)

	// Queries while rounds are ingested beside them.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ingested atomic.Int64
	var mu sync.Mutex
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			b := round()
			mu.Unlock()
			if _, _, err := svc.Write(ctx, []monitor.Batch{b}); err != nil {
				log.Fatal(err)
			}
			ingested.Add(int64(len(b.VMs)))
		}
	})
	t0 = time.Now()
	var discard int
	for range *queries {
		mu.Lock()
		to := ts
		mu.Unlock()
		vm := vms[r.IntN(len(vms))].id
		t := time.Now()
		qq, err := svc.Resolve(monitor.Query{From: to.Add(-24 * time.Hour), To: to})
		must(err)
		ps, err := svc.QueryVM(ctx, novacron.AllTenants, vm, qq)
		must(err)
		res.mixed24 = append(res.mixed24, time.Since(t))
		discard += len(ps)
	}
	close(stop)
	wg.Wait()
	res.mixedRate = float64(ingested.Load()) / time.Since(t0).Seconds()
	svc.Close()

	// Queries through the API of a server on the same database; its own
	// clock is the real one, which the data ends near.
	srv, err := server.Open(ctx, server.Config{DataDir: dataDir, DB: db, Listen: "127.0.0.1:0", AdminPassword: adminPassword,
		MetricsRetention: time.Duration(*days+2) * 24 * time.Hour, MetricsInterval: *interval,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	hc := &http.Client{Timeout: time.Minute}
	c := &benchkit.Client{Base: srv.URL(), HC: hc}
	must(c.Login(ctx, adminPassword))
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	hq := func(from time.Duration, out *[]time.Duration) {
		vm := vms[r.IntN(len(vms))].id
		v := url.Values{"from": {dataEnd.Add(-from).Format(time.RFC3339)}, "to": {dataEnd.Format(time.RFC3339)}}
		var body []byte
		t := time.Now()
		must(c.Do(ctx, "GET", "/api/vm/vms/"+vm+"/metrics?"+v.Encode(), "", nil, http.StatusOK, &body))
		*out = append(*out, time.Since(t))
		if !bytes.Contains(body, []byte(`"cpu_usage":`)) {
			log.Fatalf("API query over %v: no points: %.200s", from, body)
		}
	}
	for range *queries {
		vm := vms[r.IntN(len(vms))].id
		t := time.Now()
		must(c.Do(ctx, "GET", "/api/vm/vms/"+vm, "", nil, http.StatusOK, nil))
		res.httpVM = append(res.httpVM, time.Since(t))
		hq(24*time.Hour, &res.http24)
		hq(time.Duration(*days)*24*time.Hour, &res.http30)
		hq(time.Hour, &res.http1h)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	must(srv.Close(cctx))
	cancel()
	log.Printf("%s: API queries p50/p99: 24h %v/%v, %dd %v/%v, 1h %v/%v; GET /api/vm/vms/{id} %v/%v", name,
		benchkit.Round(p(res.http24, 50)), benchkit.Round(p(res.http24, 99)), *days,
		benchkit.Round(p(res.http30, 50)), benchkit.Round(p(res.http30, 99)), benchkit.Round(p(res.http1h, 50)),
		benchkit.Round(p(res.http1h, 99)), benchkit.Round(p(res.httpVM, 50)), benchkit.Round(p(res.httpVM, 99)))
	_ = st.Close()
	return res
}

func p(d []time.Duration, pct int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return benchkit.Pct(s, pct)
}

var metricTables = []string{"vm_metrics", "system_metrics", "vm_metrics_latest"}

// sqliteBytes returns the bytes of the metric tables and their indexes
// (after a checkpoint), and the file's size.
func sqliteBytes(path string) (int64, int64) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	must(err)
	defer db.Close()
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	must(err)
	var n int64
	must(db.QueryRow(`SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN (
		SELECT name FROM sqlite_schema WHERE tbl_name IN ('vm_metrics', 'system_metrics', 'vm_metrics_latest'))`).Scan(&n))
	fi, err := os.Stat(path)
	must(err)
	return n, fi.Size()
}

// pgBytes returns the size of the metric tables with their indexes and
// TOAST after VACUUM, and before it.
func pgBytes(dbURL string) (int64, int64) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	must(err)
	defer c.Close(ctx)
	size := func() int64 {
		var n int64
		must(c.QueryRow(ctx, `SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest($1::text[]) AS t`, metricTables).Scan(&n))
		return n
	}
	before := size()
	_, err = c.Exec(ctx, `VACUUM (FULL) vm_metrics, system_metrics, vm_metrics_latest`)
	must(err)
	return size(), before
}

// pgDatabase creates a database for the run on the server at base.
func pgDatabase(ctx context.Context, base string) (string, func()) {
	c, err := pgx.Connect(ctx, base)
	must(err)
	defer c.Close(ctx)
	name := fmt.Sprintf("metricsbench_%d", time.Now().UnixNano())
	_, err = c.Exec(ctx, "CREATE DATABASE "+name)
	must(err)
	u, err := url.Parse(base)
	must(err)
	u.Path = "/" + name
	return u.String(), func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
}

func report(rs []result) {
	fmt.Printf("\nmetricsbench: %d VMs and their node, %d days at %v (%d VM samples), %d queries of each kind\n\n",
		*nVMs, *days, *interval, rs[0].samples, *queries)
	fmt.Printf("| store | bulk ingest | steady ingest, queued / a round per transaction | bytes per VM sample (all metric tables) | query 24 h p50 / p99 (service, API) | query %d d p50 / p99 (service, API) | query 1 h raw p99 (service, API) | GET /api/vm/vms/{id} p50 / p99 | 24 h p99 while ingesting (ingest rate) |\n", *days)
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		per := float64(r.bytes) / float64(r.samples)
		extra := ""
		if r.bytesBeforeVacuum != 0 && r.name == "PostgreSQL" {
			extra = fmt.Sprintf(" (%.1f before VACUUM FULL)", float64(r.bytesBeforeVacuum)/float64(r.samples))
		} else if r.bytesBeforeVacuum != 0 {
			extra = fmt.Sprintf(" (file %.1f)", float64(r.bytesBeforeVacuum)/float64(r.samples))
		}
		fmt.Printf("| %s | %s/s | %s/s / %s/s | %.1f%s | %v / %v, %v / %v | %v / %v, %v / %v | %v, %v | %v / %v | %v (%s/s) |\n",
			r.name, num(r.bulkRate), num(r.queuedRate), num(r.roundRate), per, extra,
			ms(p(r.svc24, 50)), ms(p(r.svc24, 99)), ms(p(r.http24, 50)), ms(p(r.http24, 99)),
			ms(p(r.svc30, 50)), ms(p(r.svc30, 99)), ms(p(r.http30, 50)), ms(p(r.http30, 99)),
			ms(p(r.svc1h, 99)), ms(p(r.http1h, 99)), ms(p(r.httpVM, 50)), ms(p(r.httpVM, 99)), ms(p(r.mixed24, 99)), num(r.mixedRate))
	}
	fmt.Printf("\npoints per query: 24 h %d, %d d %d, 1 h %d\n", rs[0].points24, *days, rs[0].points30, rs[0].points1)
}

func ms(d time.Duration) string { return benchkit.Round(d).String() }

func num(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
