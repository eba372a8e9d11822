package monitor

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/store/postgres"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/testenv"
)

type testStore interface {
	Store
	novacron.Store
	novacron.VMStore
	Close() error
}

// stores runs fn on SQLite and on PostgreSQL. hold opens a read
// transaction on the database, beside the store, until the returned
// function is called.
func stores(t *testing.T, fn func(t *testing.T, st testStore)) {
	storesHold(t, func(t *testing.T, st testStore, _ func() func()) { fn(t, st) })
}

func storesHold(t *testing.T, fn func(t *testing.T, st testStore, hold func() func())) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st, func() func() {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.QueryRow(`SELECT count(*) FROM vm_metrics`).Scan(&n); err != nil || n == 0 {
				t.Fatalf("read in the open transaction: %d, %v", n, err)
			}
			return func() { tx.Rollback(); db.Close() }
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := testenv.PostgresURL(t)
		st, err := postgres.Open(context.Background(), url, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st, func() func() {
			ctx := context.Background()
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM vm_metrics`).Scan(&n); err != nil || n == 0 {
				t.Fatalf("read in the open transaction: %d, %v", n, err)
			}
			return func() { tx.Rollback(ctx); c.Close(ctx) }
		})
	})
}

type fixture struct {
	st                testStore
	tenant, other     string
	vm, otherVM, node string
	now               time.Time
	svc               *Service
	bus               *events.Bus
}

// recorder notes the resolutions a service reads.
type recorder struct {
	testStore
	mu   sync.Mutex
	seen []int
}

func (r *recorder) VMMetricChunks(ctx context.Context, scope novacron.Scope, id string, res int, from, to time.Time) ([]*novacron.MetricChunk, error) {
	r.mu.Lock()
	r.seen = append(r.seen, res)
	r.mu.Unlock()
	return r.testStore.VMMetricChunks(ctx, scope, id, res, from, to)
}

func (r *recorder) last() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

func setup(t *testing.T, st testStore, now time.Time) (*fixture, *recorder) {
	t.Helper()
	ctx := context.Background()
	fx := &fixture{st: st, now: now, bus: events.NewBus()}
	for i, name := range []string{"acme", "other"} {
		tn := &novacron.Tenant{Name: name}
		if err := st.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		vm := &novacron.VM{Name: "web", Driver: novacron.DriverProcess, TenantID: tn.ID, CPUs: 1, MemoryMB: 64}
		if err := st.CreateVM(ctx, vm, &novacron.Operation{Action: string(novacron.ActionCreate)}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			fx.tenant, fx.vm = tn.ID, vm.ID
		} else {
			fx.other, fx.otherVM = tn.ID, vm.ID
		}
	}
	n := &novacron.Node{Name: "node1", Status: novacron.NodeOnline}
	if err := st.UpsertNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	fx.node = n.ID
	rec := &recorder{testStore: st}
	fx.svc = New(rec, Config{Interval: 30 * time.Second, Bus: fx.bus, Now: func() time.Time { return fx.now }})
	t.Cleanup(fx.svc.Close)
	return fx, rec
}

// synth is a VM's deterministic value at a time.
func synth(ts time.Time, col int) float64 {
	x := float64(ts.Unix()) / 600
	switch col {
	case 0:
		return 50 + 40*math.Sin(x)
	case 1:
		return 30 + float64(ts.Unix()%7)
	case 3:
		return float64(1000 + ts.Unix()%1000)
	}
	return 5
}

func sampleAt(vm string, ts time.Time) novacron.VMSample {
	return novacron.VMSample{VMID: vm, VMPoint: novacron.VMPoint{TS: ts, CPUUsage: f(synth(ts, 0)),
		MemoryUsage: f(synth(ts, 1)), NetworkSent: f(synth(ts, 3)), IOPS: nil}}
}

// fill writes samples of both VMs and the host every 30 s in [from, to),
// a day per write.
func (fx *fixture) fill(t *testing.T, from, to time.Time) int {
	t.Helper()
	n := 0
	for day := from; day.Before(to); day = day.Add(24 * time.Hour) {
		var bs []Batch
		for ts := day; ts.Before(to) && ts.Before(day.Add(24*time.Hour)); ts = ts.Add(30 * time.Second) {
			bs = append(bs, Batch{NodeID: fx.node, Host: &novacron.HostPoint{TS: ts, CPUUsage: f(synth(ts, 0)), LoadAverage1: f(0.5)},
				VMs: []novacron.VMSample{sampleAt(fx.vm, ts), sampleAt(fx.otherVM, ts)}})
			n++
		}
		for i := range bs {
			if err := fx.svc.validate(&bs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := fx.svc.Write(context.Background(), bs); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (fx *fixture) query(t *testing.T, scope novacron.Scope, vm string, q Query) []novacron.VMPoint {
	t.Helper()
	q, err := fx.svc.Resolve(q)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := fx.svc.QueryVM(context.Background(), scope, vm, q)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// wantAverages checks points against the average of synth over each step.
func wantAverages(t *testing.T, ps []novacron.VMPoint, from, to time.Time, step time.Duration) {
	t.Helper()
	want := 0
	for b := from.Truncate(step); b.Before(to); b = b.Add(step) {
		var sum float64
		var n int
		for ts := b; ts.Before(b.Add(step)); ts = ts.Add(30 * time.Second) {
			if !ts.Before(from.Truncate(step)) && !ts.After(to) {
				sum += math.Round(synth(ts, 0)*100) / 100
				n++
			}
		}
		if n == 0 {
			continue
		}
		if want >= len(ps) {
			t.Fatalf("%d points, want more", len(ps))
		}
		p := ps[want]
		if !p.TS.Equal(b) {
			t.Fatalf("point %d at %v, want %v", want, p.TS, b)
		}
		if p.CPUUsage == nil || math.Abs(*p.CPUUsage-sum/float64(n)) > 0.01 {
			t.Fatalf("point %d cpu %v, want %v", want, p.CPUUsage, sum/float64(n))
		}
		if p.DiskUsage != nil || p.IOPS != nil {
			t.Fatalf("point %d: unmeasured values are not nil: %+v", want, p)
		}
		want++
	}
	if want != len(ps) {
		t.Fatalf("%d points, want %d", len(ps), want)
	}
}

func TestQueries(t *testing.T) {
	stores(t, func(t *testing.T, st testStore) {
		end := time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC)
		fx, rec := setup(t, st, end)
		start := end.Add(-10 * 24 * time.Hour)
		fx.fill(t, start, end)
		all := novacron.AllTenants

		t.Run("raw", func(t *testing.T) {
			ps := fx.query(t, all, fx.vm, Query{}) // the last hour
			if len(ps) != 120 {
				t.Fatalf("%d points in the last hour, want 120", len(ps))
			}
			if rec.last() != ResRaw {
				t.Errorf("read resolution %d, want raw", rec.last())
			}
			for _, p := range ps {
				if math.Abs(*p.CPUUsage-synth(p.TS, 0)) > 0.005 || *p.MemoryUsage != synth(p.TS, 1) || *p.NetworkSent != synth(p.TS, 3) {
					t.Fatalf("point %+v differs from what was written", p)
				}
				if p.DiskUsage != nil || p.IOPS != nil || p.NetworkRecv != nil {
					t.Fatalf("unmeasured values not nil: %+v", p)
				}
			}
			// Across a chunk boundary, inclusive at both ends.
			from := end.Add(-150 * time.Minute)
			ps = fx.query(t, all, fx.vm, Query{From: from, To: from.Add(time.Hour)})
			if len(ps) != 121 || !ps[0].TS.Equal(from) || !ps[120].TS.Equal(from.Add(time.Hour)) {
				t.Fatalf("%d points from %v to %v", len(ps), ps[0].TS, ps[len(ps)-1].TS)
			}
		})
		t.Run("step from raw", func(t *testing.T) {
			from := end.Add(-24 * time.Hour).Add(7 * time.Minute)
			ps := fx.query(t, all, fx.vm, Query{From: from, To: end, Step: 90 * time.Second})
			if rec.last() != ResRaw {
				t.Errorf("read resolution %d, want raw", rec.last())
			}
			wantAverages(t, ps, from, end, 90*time.Second)
		})
		t.Run("default step over a day", func(t *testing.T) {
			ps := fx.query(t, all, fx.vm, Query{From: end.Add(-24 * time.Hour)})
			if len(ps) > DefaultPoints || len(ps) < 700 {
				t.Fatalf("%d points over a day", len(ps))
			}
			wantAverages(t, ps, end.Add(-24*time.Hour), end, 2*time.Minute)
		})
		t.Run("5m rollups", func(t *testing.T) {
			from := end.Add(-7 * 24 * time.Hour)
			ps := fx.query(t, all, fx.vm, Query{From: from, To: end})
			if rec.last() != Res5m {
				t.Errorf("read resolution %d, want 300", rec.last())
			}
			wantAverages(t, ps, from, end, 15*time.Minute)
		})
		t.Run("hourly rollups for long ranges", func(t *testing.T) {
			from := end.Add(-30 * 24 * time.Hour)
			ps := fx.query(t, all, fx.vm, Query{From: from, To: end})
			if rec.last() != Res1h {
				t.Errorf("read resolution %d, want 3600", rec.last())
			}
			if len(ps) != 240 {
				t.Fatalf("%d hourly points over the 10 days written, want 240", len(ps))
			}
			wantAverages(t, ps, start, end, time.Hour)
			ps = fx.query(t, all, fx.vm, Query{From: start, To: end, Step: 6 * time.Hour})
			wantAverages(t, ps, start, end, 6*time.Hour)
		})
		t.Run("tenant scope", func(t *testing.T) {
			if ps := fx.query(t, novacron.TenantScope(fx.other), fx.vm, Query{}); len(ps) != 0 {
				t.Errorf("another tenant sees %d points", len(ps))
			}
			if ps := fx.query(t, novacron.TenantScope(fx.other), fx.otherVM, Query{}); len(ps) != 120 {
				t.Errorf("the VM's tenant sees %d points", len(ps))
			}
		})
		t.Run("hosts", func(t *testing.T) {
			q, _ := fx.svc.Resolve(Query{From: start, To: end, Step: time.Hour})
			ss, err := fx.svc.QueryHosts(context.Background(), "", q)
			if err != nil {
				t.Fatal(err)
			}
			if len(ss) != 1 || ss[0].NodeID != fx.node || len(ss[0].Points) != 240 {
				t.Fatalf("host series: %+v", ss)
			}
			p := ss[0].Points[0]
			if *p.LoadAverage1 != 0.5 || p.MemoryTotal != nil {
				t.Errorf("host point %+v", p)
			}
			ss, err = fx.svc.QueryHosts(context.Background(), "01890000-0000-7000-8000-000000000000", q)
			if err != nil || len(ss) != 0 {
				t.Errorf("unknown node: %v, %v", ss, err)
			}
		})
		t.Run("latest", func(t *testing.T) {
			ls, err := fx.svc.Latest(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) != 2 {
				t.Fatalf("%d latest samples, want 2", len(ls))
			}
			for _, l := range ls {
				if !l.TS.Equal(end.Add(-30*time.Second)) || l.NodeID != fx.node || l.TenantID == "" {
					t.Errorf("latest %+v", l)
				}
			}
			ls, _ = fx.svc.LatestVMs(context.Background(), novacron.TenantScope(fx.tenant))
			if len(ls) != 1 || ls[0].VMID != fx.vm {
				t.Errorf("latest in scope: %+v", ls)
			}
		})
		t.Run("more raw samples than the interval gives", func(t *testing.T) {
			// Samples were taken every 30 s; the interval is now an hour:
			// a day without a step would be 24 raw points by the
			// interval, is 2880, and is averaged to at most 1000.
			slow := New(st, Config{Interval: time.Hour, Now: func() time.Time { return end }})
			defer slow.Close()
			q, err := slow.Resolve(Query{From: end.Add(-24 * time.Hour)})
			if err != nil || q.Step != 0 {
				t.Fatalf("Resolve = %+v, %v; want raw", q, err)
			}
			ps, err := slow.QueryVM(context.Background(), all, fx.vm, q)
			if err != nil {
				t.Fatal(err)
			}
			wantAverages(t, ps, end.Add(-24*time.Hour), end, 2*time.Minute)
		})
		t.Run("retention", func(t *testing.T) {
			fx.now = end.Add(28*24*time.Hour + 7*time.Hour) // 30 days after the first sample, 9 hours and a sample in
			n, err := fx.svc.Prune(context.Background())
			if err != nil || n == 0 {
				t.Fatalf("Prune = %d, %v", n, err)
			}
			ps := fx.query(t, all, fx.vm, Query{From: start, To: end})
			if len(ps) == 0 || ps[0].TS.Before(start.Add(time.Hour)) {
				t.Fatalf("after pruning the oldest chunk: first point %v", ps[0].TS)
			}
			// What a chunk still holds from before retention is not
			// answered: not raw, not from 5-minute or hourly averages.
			cutoff := fx.now.Add(-DefaultRetention)
			for _, step := range []time.Duration{0, 90 * time.Second, 10 * time.Minute, 2 * time.Hour} {
				ps := fx.query(t, all, fx.vm, Query{From: cutoff.Add(-24 * time.Hour), To: cutoff.Add(3 * time.Hour), Step: step})
				if len(ps) == 0 || ps[0].TS.Before(cutoff.Truncate(max(step, time.Second))) {
					t.Errorf("step %v: first point %v, before retention (%v)", step, ps[0].TS, cutoff)
				}
			}
			fx.now = end.Add(31 * 24 * time.Hour)
			if _, err := fx.svc.Prune(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, step := range []time.Duration{0, 5 * time.Minute, time.Hour} {
				if ps := fx.query(t, all, fx.vm, Query{From: start, To: end.Add(time.Hour), Step: step}); len(ps) != 0 {
					t.Errorf("step %v: %d points left past retention", step, len(ps))
				}
			}
			if ls, _ := fx.svc.Latest(context.Background()); len(ls) != 0 {
				t.Errorf("%d latest samples left past retention", len(ls))
			}
			// A sample past retention is not written.
			fx.fill(t, start, start.Add(time.Minute))
			if ps := fx.query(t, all, fx.vm, Query{From: start, To: start.Add(time.Hour)}); len(ps) != 0 {
				t.Errorf("samples past retention were written")
			}
		})
	})
}

func TestIngestEventsAndObservers(t *testing.T) {
	stores(t, func(t *testing.T, st testStore) {
		now := time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC)
		fx, _ := setup(t, st, now)
		ctx := context.Background()
		sub := fx.bus.Subscribe(100, nil)
		defer sub.Close()

		got := make(chan []novacron.VMSample, 10)
		stop := fx.svc.OnIngest(func(hosts []novacron.HostSample, vms []novacron.VMSample) { got <- vms })
		defer stop()
		// An observer that never returns holds up nothing.
		block := make(chan struct{})
		defer close(block)
		fx.svc.OnIngest(func([]novacron.HostSample, []novacron.VMSample) { <-block })

		b := Batch{NodeID: fx.node, Host: &novacron.HostPoint{TS: now, CPUUsage: f(3)},
			VMs: []novacron.VMSample{sampleAt(fx.vm, now), sampleAt(fx.otherVM, now),
				sampleAt("01890000-0000-7000-8000-000000000000", now)}} // a VM that does not exist is dropped
		if err := fx.svc.Ingest(ctx, b); err != nil {
			t.Fatal(err)
		}
		vms := <-got
		if len(vms) != 2 {
			t.Fatalf("observer got %d VM samples, want 2", len(vms))
		}
		for _, v := range vms {
			want := map[string]string{fx.vm: fx.tenant, fx.otherVM: fx.other}[v.VMID]
			if v.TenantID != want || v.NodeID != fx.node {
				t.Errorf("observed sample %+v: tenant %q node %q", v, v.TenantID, v.NodeID)
			}
		}
		// One event for the host, one per tenant for its VMs.
		seen := map[string]events.Event{}
		for range 3 {
			select {
			case e := <-sub.C:
				if e.Type != events.TypeMetrics {
					t.Fatalf("event type %q", e.Type)
				}
				seen[e.TenantID] = e
			case <-time.After(5 * time.Second):
				t.Fatal("no event")
			}
		}
		if e := seen[fx.tenant]; !e.About([]string{fx.vm}) || e.About([]string{fx.otherVM}) ||
			len(e.Data.(VMEvent).VMs) != 1 || e.Data.(VMEvent).VMs[0].VMID != fx.vm || e.Data.(VMEvent).NodeID != fx.node {
			t.Errorf("VM event %+v", e)
		}
		if e := seen[fx.other]; !e.About([]string{fx.otherVM}) || len(e.Data.(VMEvent).VMs) != 1 {
			t.Errorf("the other tenant's VM event %+v", e)
		}
		if e := seen[""]; e.Data.(novacron.HostSample).NodeID != fx.node {
			t.Errorf("host event %+v", e)
		}
		// The blocked observer falls behind; ingestion goes on.
		for i := 1; i <= observerQueue+10; i++ {
			ts := now.Add(time.Duration(i) * time.Second)
			fx.now = ts
			if err := fx.svc.Ingest(ctx, Batch{NodeID: fx.node, VMs: []novacron.VMSample{sampleAt(fx.vm, ts)}}); err != nil {
				t.Fatal(err)
			}
			<-got
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := fx.svc.Flush(fctx); err != nil {
			t.Fatal(err)
		}
		ls, _ := fx.svc.Latest(ctx)
		if len(ls) != 2 || !(ls[0].TS.Equal(fx.now) || ls[1].TS.Equal(fx.now)) {
			t.Errorf("latest after ingesting: %+v", ls)
		}
	})
}

func TestValidate(t *testing.T) {
	now := time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC)
	svc := New(nil, Config{Now: func() time.Time { return now }})
	defer svc.Close()
	node := "01890000-0000-7000-8000-00000000000a"
	vm := "01890000-0000-7000-8000-00000000000b"
	for name, c := range map[string]struct {
		b     Batch
		field string
	}{
		"no node":     {Batch{}, "node_id"},
		"bad node":    {Batch{NodeID: "n1"}, "node_id"},
		"bad vm":      {Batch{NodeID: node, VMs: []novacron.VMSample{{VMID: "x", VMPoint: novacron.VMPoint{TS: now}}}}, "vms.vm_id"},
		"no time":     {Batch{NodeID: node, VMs: []novacron.VMSample{{VMID: vm}}}, "vms.ts"},
		"future":      {Batch{NodeID: node, VMs: []novacron.VMSample{{VMID: vm, VMPoint: novacron.VMPoint{TS: now.Add(time.Hour)}}}}, "vms.ts"},
		"nan":         {Batch{NodeID: node, VMs: []novacron.VMSample{{VMID: vm, VMPoint: novacron.VMPoint{TS: now, CPUUsage: f(math.NaN())}}}}, "vms"},
		"negative":    {Batch{NodeID: node, Host: &novacron.HostPoint{TS: now, LoadAverage1: f(-1)}}, "host"},
		"host future": {Batch{NodeID: node, Host: &novacron.HostPoint{TS: now.Add(time.Hour)}}, "host.ts"},
		"too many":    {Batch{NodeID: node, VMs: make([]novacron.VMSample, MaxBatchVMs+1)}, "vms"},
	} {
		err := svc.Ingest(context.Background(), c.b)
		if novacron.ErrorCode(err) != novacron.EInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
			continue
		}
		if fieldOf(err) != c.field {
			t.Errorf("%s: error %v names another field than %s", name, err, c.field)
		}
	}
}

func TestResolve(t *testing.T) {
	now := time.Date(2025, 6, 11, 12, 0, 0, 0, time.UTC)
	svc := New(nil, Config{Now: func() time.Time { return now }})
	defer svc.Close()
	for name, c := range map[string]struct {
		q        Query
		from, to time.Time
		step     time.Duration
		field    string
	}{
		"defaults":     {q: Query{}, from: now.Add(-time.Hour), to: now},
		"8 hours raw":  {q: Query{From: now.Add(-8 * time.Hour)}, from: now.Add(-8 * time.Hour), to: now},
		"a day":        {q: Query{From: now.Add(-24 * time.Hour)}, from: now.Add(-24 * time.Hour), to: now, step: 2 * time.Minute},
		"a week":       {q: Query{From: now.Add(-7 * 24 * time.Hour)}, from: now.Add(-7 * 24 * time.Hour), to: now, step: 15 * time.Minute},
		"30 days":      {q: Query{From: now.Add(-30 * 24 * time.Hour)}, from: now.Add(-30 * 24 * time.Hour), to: now, step: time.Hour},
		"a year":       {q: Query{From: now.Add(-365 * 24 * time.Hour)}, from: now.Add(-365 * 24 * time.Hour), to: now, step: 12 * time.Hour},
		"given step":   {q: Query{Step: 10 * time.Second}, from: now.Add(-time.Hour), to: now, step: 10 * time.Second},
		"backwards":    {q: Query{From: now, To: now.Add(-time.Hour)}, field: "from"},
		"too long":     {q: Query{From: now.Add(-MaxRange - time.Hour)}, field: "from"},
		"tiny step":    {q: Query{Step: time.Millisecond}, field: "step"},
		"odd step":     {q: Query{Step: 1500 * time.Millisecond}, field: "step"},
		"many points":  {q: Query{From: now.Add(-30 * 24 * time.Hour), Step: time.Minute}, field: "step"},
		"just to":      {q: Query{To: now.Add(-2 * time.Hour)}, from: now.Add(-3 * time.Hour), to: now.Add(-2 * time.Hour)},
		"in the past":  {q: Query{From: now.Add(-48 * time.Hour), To: now.Add(-47 * time.Hour)}, from: now.Add(-48 * time.Hour), to: now.Add(-47 * time.Hour)},
		"max points":   {q: Query{From: now.Add(-MaxPoints * time.Minute), Step: time.Minute}, from: now.Add(-MaxPoints * time.Minute), to: now, step: time.Minute},
		"equal bounds": {q: Query{From: now, To: now}, field: "from"},
	} {
		got, err := svc.Resolve(c.q)
		if c.field != "" {
			if fieldOf(err) != c.field {
				t.Errorf("%s: error %v, want one naming %s", name, err, c.field)
			}
			continue
		}
		if err != nil || !got.From.Equal(c.from) || !got.To.Equal(c.to) || got.Step != c.step {
			t.Errorf("%s: %+v, %v; want %v..%v step %v", name, got, err, c.from, c.to, c.step)
		}
	}
	for step, res := range map[time.Duration]int{0: ResRaw, 90 * time.Second: ResRaw, 10 * time.Minute: Res5m,
		2 * time.Hour: Res1h, 7 * time.Minute: ResRaw, 90 * time.Minute: Res5m} {
		if got := source(step); got != res {
			t.Errorf("source(%v) = %d, want %d", step, got, res)
		}
	}
}

// fieldOf returns the field an invalid_request error names.
func fieldOf(err error) string {
	var e *novacron.Error
	if !errors.As(err, &e) || e.Code != novacron.EInvalid {
		return ""
	}
	f, _ := e.Details["field"].(string)
	return f
}

// blockingStore holds every chunk read until released.
type blockingStore struct {
	testStore
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) VMMetricChunks(ctx context.Context, scope novacron.Scope, id string, res int, from, to time.Time) ([]*novacron.MetricChunk, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.testStore.VMMetricChunks(ctx, scope, id, res, from, to)
}

// TestSlowQueryDoesNotBlockIngest holds queries in the store, and a read
// transaction open on the database, while batches are ingested.
func TestSlowQueryDoesNotBlockIngest(t *testing.T) {
	storesHold(t, func(t *testing.T, st testStore, hold func() func()) {
		now := time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC)
		fx, _ := setup(t, st, now)
		fx.fill(t, now.Add(-2*time.Hour), now)
		bs := &blockingStore{testStore: st, entered: make(chan struct{}), release: make(chan struct{})}
		svc := New(bs, Config{Interval: 30 * time.Second, Now: func() time.Time { return now.Add(time.Hour) }})
		defer svc.Close()
		ctx := context.Background()

		// A read transaction left open on the database.
		defer hold()()
		done := make(chan error, 4)
		for range 4 {
			go func() {
				q, _ := svc.Resolve(Query{From: now.Add(-2 * time.Hour), To: now})
				_, err := svc.QueryVM(ctx, novacron.AllTenants, fx.vm, q)
				done <- err
			}()
			<-bs.entered
		}
		// Four queries are stuck in the store; ingestion goes on.
		for i := range 20 {
			ts := now.Add(time.Duration(i+1) * 30 * time.Second)
			if err := svc.Ingest(ctx, Batch{NodeID: fx.node, VMs: []novacron.VMSample{sampleAt(fx.vm, ts)}}); err != nil {
				t.Fatal(err)
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := svc.Flush(fctx); err != nil {
			t.Fatalf("ingestion waited for the queries: %v", err)
		}
		ls, err := st.LatestVMMetrics(ctx, novacron.AllTenants)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range ls {
			found = found || (l.VMID == fx.vm && l.TS.Equal(now.Add(20*30*time.Second)))
		}
		if !found {
			t.Errorf("the last sample ingested is not the latest: %+v", ls)
		}
		close(bs.release)
		for range 4 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
}

// flakyStore fails the first fail metric writes.
type flakyStore struct {
	testStore
	mu   sync.Mutex
	fail int
}

func (f *flakyStore) UpdateMetrics(ctx context.Context, fn func(novacron.MetricsTx) error) error {
	f.mu.Lock()
	failing := f.fail > 0
	f.fail--
	f.mu.Unlock()
	if failing {
		return errors.New("database away")
	}
	return f.testStore.UpdateMetrics(ctx, fn)
}

func TestWriteRetries(t *testing.T) {
	old := retryDelay
	retryDelay = time.Millisecond
	defer func() { retryDelay = old }()
	st, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC)
	fx, _ := setup(t, st, now)
	ctx := context.Background()
	for _, c := range []struct {
		fail    int
		written bool
	}{{fail: 2, written: true}, {fail: 3, written: false}} {
		flaky := &flakyStore{testStore: st, fail: c.fail}
		svc := New(flaky, Config{Now: func() time.Time { return now }})
		now = now.Add(time.Minute)
		if err := svc.Ingest(ctx, Batch{NodeID: fx.node, VMs: []novacron.VMSample{sampleAt(fx.vm, now)}}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		svc.Close()
		ls, err := st.LatestVMMetrics(ctx, novacron.AllTenants)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(ls) == 1 && ls[0].TS.Equal(now); got != c.written {
			t.Errorf("%d failures: written %v, want %v (%+v)", c.fail, got, c.written, ls)
		}
	}
}
