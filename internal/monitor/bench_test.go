package monitor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store/sqlite"
)

// BenchmarkWriteRound writes rounds of one sample of each of 100 VMs, one
// round per transaction, into chunks already half full.
func BenchmarkWriteRound(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	tn := &novacron.Tenant{Name: "bench"}
	if err := st.CreateTenant(ctx, tn); err != nil {
		b.Fatal(err)
	}
	node := &novacron.Node{Name: "n", Status: novacron.NodeOnline}
	if err := st.UpsertNode(ctx, node); err != nil {
		b.Fatal(err)
	}
	var ids []string
	for i := range 100 {
		vm := &novacron.VM{Name: "vm" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Driver: novacron.DriverProcess,
			TenantID: tn.ID, CPUs: 1, MemoryMB: 64}
		if err := st.CreateVM(ctx, vm, &novacron.Operation{Action: string(novacron.ActionCreate)}); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, vm.ID)
	}
	ts := time.Date(2025, 6, 11, 12, 30, 0, 0, time.UTC).Add(-12 * time.Hour)
	svc := New(st, Config{Now: func() time.Time { return ts }})
	defer svc.Close()
	round := func() Batch {
		ts = ts.Add(30 * time.Second)
		b := Batch{NodeID: node.ID, Host: &novacron.HostPoint{TS: ts, CPUUsage: f(1)}}
		for _, id := range ids {
			b.VMs = append(b.VMs, sampleAt(id, ts))
		}
		return b
	}
	var warm []Batch
	for range 12 * 120 {
		warm = append(warm, round())
	}
	if _, _, err := svc.Write(ctx, warm); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, _, err := svc.Write(ctx, []Batch{round()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(ids)), "µs/sample")
}
