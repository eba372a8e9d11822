package agent

import (
	"context"
	"testing"
	"time"

	"github.com/novacron/novacron/internal/driver"
)

func i64(v int64) *int64 { return &v }

func val(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestGuestPoint(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := driver.Spec{CPUs: 2, MemoryMB: 512}
	prev := driver.Stats{CPUSeconds: 10, MemoryBytes: 128 << 20, SampledAt: t0, NetworkTxBytes: i64(1000), NetworkRxBytes: i64(5000),
		DiskReadOps: i64(10), DiskWriteOps: i64(20)}
	cur := driver.Stats{CPUSeconds: 25, MemoryBytes: 256 << 20, SampledAt: t0.Add(10 * time.Second), NetworkTxBytes: i64(3000),
		NetworkRxBytes: i64(5000), DiskReadOps: i64(40), DiskWriteOps: i64(90)}

	p := guestPoint(spec, &prev, cur)
	for name, c := range map[string]struct{ got, want any }{
		"ts":     {p.TS, t0.Add(10 * time.Second)},
		"cpu":    {val(p.CPUUsage), 75.0}, // 15 s of CPU in 10 s on 2 cpus
		"memory": {val(p.MemoryUsage), 50.0},
		"disk":   {val(p.DiskUsage), nil},
		"sent":   {val(p.NetworkSent), 200.0},
		"recv":   {val(p.NetworkRecv), 0.0},
		"iops":   {val(p.IOPS), 10.0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}

	// The first sample has no rates.
	p = guestPoint(spec, nil, cur)
	if p.CPUUsage != nil || p.NetworkSent != nil || p.IOPS != nil || val(p.MemoryUsage) != 50.0 {
		t.Errorf("first sample %+v", p)
	}
	// Counters that went back (a restart) and missing counters give nil;
	// usage over the allocation is capped.
	back := cur
	back.CPUSeconds, back.NetworkTxBytes, back.DiskReadOps = 1, i64(10), nil
	back.MemoryBytes = 1 << 30
	p = guestPoint(spec, &prev, back)
	if p.CPUUsage != nil || p.NetworkSent != nil || p.IOPS != nil || val(p.MemoryUsage) != 100.0 {
		t.Errorf("after a restart %+v", p)
	}
	busy := cur
	busy.CPUSeconds = 100
	if p = guestPoint(spec, &prev, busy); val(p.CPUUsage) != 100.0 {
		t.Errorf("cpu above the allocation = %v, want 100", val(p.CPUUsage))
	}
	// A VM without cpus or memory has no percentage of them.
	if p = guestPoint(driver.Spec{}, &prev, cur); p.CPUUsage != nil || p.MemoryUsage != nil {
		t.Errorf("no allocation %+v", p)
	}
	// Samples at the same instant give no rates.
	if p = guestPoint(spec, &cur, cur); p.CPUUsage != nil {
		t.Errorf("zero interval %+v", p)
	}
}

func TestHostRates(t *testing.T) {
	if v := cpuUsage(&cpuTimes{busy: 10, total: 100}, &cpuTimes{busy: 40, total: 200}); val(v) != 30.0 {
		t.Errorf("cpu = %v, want 30", val(v))
	}
	if v := cpuUsage(nil, &cpuTimes{busy: 40, total: 200}); v != nil {
		t.Errorf("cpu without a previous sample = %v", val(v))
	}
	if v := cpuUsage(&cpuTimes{busy: 10, total: 100}, &cpuTimes{busy: 10, total: 100}); v != nil {
		t.Errorf("cpu over no time = %v", val(v))
	}
	t0 := time.Now()
	s, r := netRates(&netCounters{at: t0, sent: 100, recv: 1000}, &netCounters{at: t0.Add(2 * time.Second), sent: 300, recv: 1000})
	if val(s) != 100.0 || val(r) != 0.0 {
		t.Errorf("net = %v, %v", val(s), val(r))
	}
	if s, r = netRates(&netCounters{at: t0, sent: 100}, &netCounters{at: t0.Add(time.Second), sent: 50}); s != nil || r != nil {
		t.Error("net rates from counters that went back")
	}
}

func TestSampleHost(t *testing.T) {
	c := newCollector(t.TempDir())
	ctx := context.Background()
	p := c.sampleHost(ctx)
	if p.MemoryTotal == nil || *p.MemoryTotal <= 0 || p.MemoryUsage == nil || p.DiskTotal == nil || p.DiskUsage == nil ||
		p.LoadAverage1 == nil || p.DiskAvailable == nil || p.MemoryAvailable == nil {
		t.Fatalf("first host sample lacks measurable values: %+v", p)
	}
	if p.CPUUsage != nil || p.NetworkSent != nil {
		t.Errorf("first host sample has rates: %+v", p)
	}
	time.Sleep(200 * time.Millisecond)
	p = c.sampleHost(ctx)
	if p.CPUUsage == nil || *p.CPUUsage < 0 || *p.CPUUsage > 100 || p.NetworkSent == nil || p.NetworkRecv == nil {
		t.Errorf("second host sample lacks rates: %+v", p)
	}
	if *p.MemoryAvailable > *p.MemoryTotal || *p.DiskAvailable > *p.DiskTotal {
		t.Errorf("available above total: %+v", p)
	}
}
