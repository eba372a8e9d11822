package storetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func chunk(host bool, id string, res int, start time.Time, count int, data string) *novacron.MetricChunk {
	return &novacron.MetricChunk{MetricChunkKey: novacron.MetricChunkKey{Host: host, ID: id, Resolution: res, Start: start},
		End: start.Add(time.Duration(count) * time.Second), Count: count, Data: []byte(data)}
}

func putChunks(t *testing.T, s Store, cs ...*novacron.MetricChunk) {
	t.Helper()
	noErr(t, s.UpdateMetrics(ctx(t), func(tx novacron.MetricsTx) error { return tx.PutChunks(ctx(t), cs) }), "PutChunks")
}

func wantChunks(t *testing.T, what string, got []*novacron.MetricChunk, want ...*novacron.MetricChunk) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d chunks, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Host != w.Host || g.ID != w.ID || g.Resolution != w.Resolution || !g.Start.Equal(w.Start) ||
			!g.End.Equal(w.End) || g.Count != w.Count || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("%s: chunk %d = %+v, want %+v", what, i, *g, *w)
		}
		if g.Start.Location() != time.UTC || g.End.Location() != time.UTC {
			t.Errorf("%s: chunk %d times not in UTC", what, i)
		}
	}
}

func testMetricChunks(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	vm, _ := mustVM(t, s, tn.ID, "web", nil)
	vm2, _ := mustVM(t, s, other.ID, "db", nil)
	node := mustNode(t, s, "node1", novacron.NodeOnline)
	node2 := mustNode(t, s, "node2", novacron.NodeOnline)
	h0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	h1, h2 := h0.Add(time.Hour), h0.Add(2*time.Hour)

	a0 := chunk(false, vm.ID, 1, h0, 3, "a0\x00\xff")
	a1 := chunk(false, vm.ID, 1, h1, 2, "a1")
	a2 := chunk(false, vm.ID, 1, h2, 1, "a2")
	r0 := chunk(false, vm.ID, 300, h0, 1, "r0")
	b0 := chunk(false, vm2.ID, 1, h0, 1, "b0")
	n0 := chunk(true, node.ID, 1, h0, 1, "n0")
	n1 := chunk(true, node2.ID, 1, h0, 1, "n1")
	gone := chunk(false, missingID, 1, h0, 1, "x")
	goneNode := chunk(true, missingID, 1, h0, 1, "x")
	putChunks(t, s, a2, a0, a1, r0, b0, n0, n1, gone, goneNode)

	got, err := s.VMMetricChunks(c, novacron.AllTenants, vm.ID, 1, h0, h2)
	noErr(t, err, "VMMetricChunks")
	wantChunks(t, "all", got, a0, a1, a2)
	got, err = s.VMMetricChunks(c, novacron.TenantScope(tn.ID), vm.ID, 1, h1, h1)
	noErr(t, err, "VMMetricChunks")
	wantChunks(t, "one hour in scope", got, a1)
	got, err = s.VMMetricChunks(c, novacron.AllTenants, vm.ID, 300, h0, h2)
	noErr(t, err, "VMMetricChunks rollup")
	wantChunks(t, "rollup", got, r0)
	// Another tenant's VM shows nothing; neither does a malformed id.
	for _, id := range append([]string{vm.ID}, malformedIDs...) {
		got, err = s.VMMetricChunks(c, novacron.TenantScope(other.ID), id, 1, h0, h2)
		noErr(t, err, "VMMetricChunks other tenant")
		wantChunks(t, "other tenant", got)
	}
	got, err = s.HostMetricChunks(c, "", 1, h0, h2)
	noErr(t, err, "HostMetricChunks")
	first, second := n0, n1
	if node2.ID < node.ID {
		first, second = n1, n0
	}
	wantChunks(t, "every node", got, first, second)
	got, err = s.HostMetricChunks(c, node2.ID, 1, h0, h2)
	noErr(t, err, "HostMetricChunks one")
	wantChunks(t, "one node", got, n1)

	// Chunks are loaded by key in a transaction and replaced.
	noErr(t, s.UpdateMetrics(c, func(tx novacron.MetricsTx) error {
		cs, err := tx.Chunks(c, []novacron.MetricChunkKey{a1.MetricChunkKey, n0.MetricChunkKey, gone.MetricChunkKey,
			{ID: "bad", Resolution: 1, Start: h0}, {ID: vm.ID, Resolution: 3600, Start: h0}})
		if err != nil {
			return err
		}
		wantChunks(t, "loaded", cs, a1, n0)
		a1b := chunk(false, vm.ID, 1, h1, 5, "a1 longer")
		return tx.PutChunks(c, []*novacron.MetricChunk{a1b})
	}), "UpdateMetrics")
	got, err = s.VMMetricChunks(c, novacron.AllTenants, vm.ID, 1, h1, h1)
	noErr(t, err, "VMMetricChunks")
	wantChunks(t, "replaced", got, chunk(false, vm.ID, 1, h1, 5, "a1 longer"))

	// A failing transaction writes nothing.
	boom := novacron.Errorf(novacron.EInvalid, "boom")
	err = s.UpdateMetrics(c, func(tx novacron.MetricsTx) error {
		if err := tx.PutChunks(c, []*novacron.MetricChunk{chunk(false, vm.ID, 1, h0, 9, "lost")}); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("UpdateMetrics = %v, want fn's error", err)
	}
	got, err = s.VMMetricChunks(c, novacron.AllTenants, vm.ID, 1, h0, h0)
	noErr(t, err, "VMMetricChunks")
	wantChunks(t, "rolled back", got, a0)

	// Pruning goes by a chunk's last point.
	n, err := s.PruneMetrics(c, a0.End.Add(time.Millisecond))
	noErr(t, err, "PruneMetrics")
	if n != 5 { // a0, r0, b0, n0, n1
		t.Errorf("pruned %d rows, want 5", n)
	}
	got, err = s.VMMetricChunks(c, novacron.AllTenants, vm.ID, 1, h0, h2)
	noErr(t, err, "VMMetricChunks")
	wantChunks(t, "after prune", got, chunk(false, vm.ID, 1, h1, 5, "a1 longer"), a2)

	// A VM's chunks go with it.
	noErr(t, s.DeleteVM(c, vm.ID), "DeleteVM")
	got, err = s.VMMetricChunks(c, novacron.AllTenants, vm.ID, 1, h0, h2)
	noErr(t, err, "VMMetricChunks")
	wantChunks(t, "deleted vm", got)
}

func vmSample(vm *novacron.VM, node string, ts time.Time, cpu float64) novacron.VMSample {
	return novacron.VMSample{VMID: vm.ID, NodeID: node, VMPoint: novacron.VMPoint{TS: ts, CPUUsage: &cpu, MemoryUsage: ptr(10.5)}}
}

func testMetricLatest(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	vm, _ := mustVM(t, s, tn.ID, "web", nil)
	vm2, _ := mustVM(t, s, other.ID, "db", nil)
	node := mustNode(t, s, "node1", novacron.NodeOnline)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	put := func(ss ...novacron.VMSample) {
		t.Helper()
		noErr(t, s.UpdateMetrics(c, func(tx novacron.MetricsTx) error { return tx.PutLatest(c, ss) }), "PutLatest")
	}
	put(vmSample(vm, node.ID, t0, 1), vmSample(vm2, "", t0, 2), novacron.VMSample{VMID: missingID, VMPoint: novacron.VMPoint{TS: t0}})
	put(vmSample(vm, node.ID, t0.Add(30*time.Second), 3))
	put(vmSample(vm, node.ID, t0.Add(10*time.Second), 99)) // older: ignored

	want := []novacron.VMSample{vmSample(vm, node.ID, t0.Add(30*time.Second), 3), vmSample(vm2, "", t0, 2)}
	want[0].TenantID, want[1].TenantID = tn.ID, other.ID
	if vm2.ID < vm.ID {
		want[0], want[1] = want[1], want[0]
	}
	got, err := s.LatestVMMetrics(c, novacron.AllTenants)
	noErr(t, err, "LatestVMMetrics")
	wantEqual(t, "latest", got, want)
	got, err = s.LatestVMMetrics(c, novacron.TenantScope(other.ID))
	noErr(t, err, "LatestVMMetrics scoped")
	w := vmSample(vm2, "", t0, 2)
	w.TenantID = other.ID
	wantEqual(t, "latest of one tenant", got, []novacron.VMSample{w})
	got, err = s.LatestVMMetrics(c, novacron.TenantScope("not-a-uuid"))
	noErr(t, err, "LatestVMMetrics malformed scope")
	if len(got) != 0 {
		t.Errorf("a malformed scope sees %d samples", len(got))
	}

	_, err = s.PruneMetrics(c, t0.Add(time.Second))
	noErr(t, err, "PruneMetrics")
	got, err = s.LatestVMMetrics(c, novacron.AllTenants)
	noErr(t, err, "LatestVMMetrics")
	if len(got) != 1 || got[0].VMID != vm.ID {
		t.Errorf("after prune: %+v, want only %s", got, vm.ID)
	}
}

// testMetricConcurrent has writers merge into the same chunk at once: the
// store serialises them, so no write is lost.
func testMetricConcurrent(t *testing.T, s Store) {
	tn := mustTenant(t, s, "acme")
	vm, _ := mustVM(t, s, tn.ID, "web", nil)
	h0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	key := novacron.MetricChunkKey{ID: vm.ID, Resolution: 1, Start: h0}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				errs <- s.UpdateMetrics(context.Background(), func(tx novacron.MetricsTx) error {
					cs, err := tx.Chunks(context.Background(), []novacron.MetricChunkKey{key})
					if err != nil {
						return err
					}
					n := 0
					if len(cs) == 1 {
						n = cs[0].Count
					}
					return tx.PutChunks(context.Background(), []*novacron.MetricChunk{chunk(false, vm.ID, 1, h0, n+1, "x")})
				})
			}
		})
	}
	go func() { wg.Wait(); close(errs) }()
	for err := range errs {
		noErr(t, err, "UpdateMetrics")
	}
	got, err := s.VMMetricChunks(ctx(t), novacron.AllTenants, vm.ID, 1, h0, h0)
	noErr(t, err, "VMMetricChunks")
	if len(got) != 1 || got[0].Count != 40 {
		t.Fatalf("count after 40 increments: %+v", got)
	}
}
