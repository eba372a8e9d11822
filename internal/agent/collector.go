package agent

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// PushFunc takes one round of samples to the control plane: the host's and
// those of the guests that run. It must not block for long.
type PushFunc func(ctx context.Context, host *novacron.HostPoint, vms []novacron.VMSample)

// CollectMetrics samples the host and every running guest whose driver
// keeps stats every interval, turns counters into rates and percentages
// against the previous round, and pushes each round, until ctx ends.
// Values that cannot be measured are nil: rates in a guest's or the host's
// first round, disk usage of guests, whatever a driver does not count.
func (a *Agent) CollectMetrics(ctx context.Context, interval time.Duration, push PushFunc) {
	c := newCollector(a.cfg.Dir)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		host, vms := c.round(ctx, a)
		if ctx.Err() != nil {
			return
		}
		push(ctx, host, vms)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type collector struct {
	dataDir string
	prevCPU *cpuTimes
	prevNet *netCounters
	guests  map[string]driver.Stats
}

func newCollector(dataDir string) *collector {
	return &collector{dataDir: dataDir, guests: map[string]driver.Stats{}}
}

// round takes one sample of the host and of every guest.
func (c *collector) round(ctx context.Context, a *Agent) (*novacron.HostPoint, []novacron.VMSample) {
	host := c.sampleHost(ctx)
	a.mu.Lock()
	specs := make([]driver.Spec, 0, len(a.guests))
	kinds := make([]string, 0, len(a.guests))
	for _, r := range a.guests {
		specs = append(specs, r.Spec)
		kinds = append(kinds, r.Driver)
	}
	a.mu.Unlock()
	var vms []novacron.VMSample
	seen := map[string]bool{}
	for i, spec := range specs {
		sr, ok := a.drivers[kinds[i]].(driver.StatsReader)
		if !ok {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := sr.Stats(sctx, spec.ID)
		cancel()
		if err != nil {
			// Not running (EInvalidState), deleted meanwhile, or a
			// failure: no sample this round, and rates start over.
			if !novacron.IsCode(err, novacron.EInvalidState) && !novacron.IsCode(err, novacron.ENotFound) && ctx.Err() == nil {
				a.log.Warn("guest stats", "guest", spec.ID, "err", err)
			}
			continue
		}
		if st.SampledAt.IsZero() {
			st.SampledAt = time.Now().UTC()
		}
		seen[spec.ID] = true
		prev, ok := c.guests[spec.ID]
		var pp *driver.Stats
		if ok {
			pp = &prev
		}
		vms = append(vms, novacron.VMSample{VMID: spec.ID, VMPoint: guestPoint(spec, pp, st)})
		c.guests[spec.ID] = st
	}
	for id := range c.guests {
		if !seen[id] {
			delete(c.guests, id)
		}
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].VMID < vms[j].VMID })
	return host, vms
}

func pf(v float64) *float64 { return &v }

// clampPct bounds a percentage to 0–100: counters read a moment apart may
// overshoot a little.
func clampPct(v float64) *float64 {
	return pf(math.Round(math.Max(0, math.Min(100, v))*100) / 100)
}

// rate is (cur - prev) per second over dt, nil when either counter is
// missing or the counter went back (the guest restarted).
func rate(prev, cur *int64, dt float64) *float64 {
	if prev == nil || cur == nil || *cur < *prev || dt <= 0 {
		return nil
	}
	return pf(float64(*cur-*prev) / dt)
}

func sum(a, b *int64) *int64 {
	if a == nil || b == nil {
		return nil
	}
	s := *a + *b
	return &s
}

// guestPoint turns a guest's counters into the units of the API: CPU as a
// percentage of its cpus, memory of its memory_mb, byte and operation
// rates per second since the previous sample (nil without one).
func guestPoint(spec driver.Spec, prev *driver.Stats, cur driver.Stats) novacron.VMPoint {
	p := novacron.VMPoint{TS: cur.SampledAt.UTC()}
	if spec.MemoryMB > 0 && cur.MemoryBytes >= 0 {
		p.MemoryUsage = clampPct(float64(cur.MemoryBytes) / float64(int64(spec.MemoryMB)<<20) * 100)
	}
	if prev == nil {
		return p
	}
	dt := cur.SampledAt.Sub(prev.SampledAt).Seconds()
	if dt <= 0 {
		return p
	}
	if spec.CPUs > 0 && cur.CPUSeconds >= prev.CPUSeconds {
		p.CPUUsage = clampPct((cur.CPUSeconds - prev.CPUSeconds) / dt / float64(spec.CPUs) * 100)
	}
	p.NetworkSent = rate(prev.NetworkTxBytes, cur.NetworkTxBytes, dt)
	p.NetworkRecv = rate(prev.NetworkRxBytes, cur.NetworkRxBytes, dt)
	p.IOPS = rate(sum(prev.DiskReadOps, prev.DiskWriteOps), sum(cur.DiskReadOps, cur.DiskWriteOps), dt)
	return p
}

// cpuTimes is the host's CPU time: busy and total seconds.
type cpuTimes struct{ busy, total float64 }

type netCounters struct {
	at         time.Time
	sent, recv uint64
}

// sampleHost measures the host: CPU (against the previous round), memory,
// the file system of the data directory, network rates of every interface
// but loopback, load averages.
func (c *collector) sampleHost(ctx context.Context) *novacron.HostPoint {
	now := time.Now().UTC()
	p := &novacron.HostPoint{TS: now}
	if ts, err := cpu.TimesWithContext(ctx, false); err == nil && len(ts) == 1 {
		t := ts[0]
		// Guest time is already counted in user and nice on Linux.
		total := t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
		cur := &cpuTimes{busy: total - t.Idle - t.Iowait, total: total}
		p.CPUUsage = cpuUsage(c.prevCPU, cur)
		c.prevCPU = cur
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil && vm.Total > 0 {
		p.MemoryTotal = pf(float64(vm.Total))
		p.MemoryAvailable = pf(float64(vm.Available))
		p.MemoryUsage = clampPct(float64(vm.Total-min(vm.Available, vm.Total)) / float64(vm.Total) * 100)
	}
	if du, err := disk.UsageWithContext(ctx, c.dataDir); err == nil && du.Total > 0 {
		p.DiskTotal = pf(float64(du.Total))
		p.DiskAvailable = pf(float64(du.Free))
		p.DiskUsage = clampPct(du.UsedPercent)
	}
	if ns, err := net.IOCountersWithContext(ctx, true); err == nil {
		cur := &netCounters{at: now}
		for _, n := range ns {
			if n.Name != "lo" {
				cur.sent += n.BytesSent
				cur.recv += n.BytesRecv
			}
		}
		p.NetworkSent, p.NetworkRecv = netRates(c.prevNet, cur)
		c.prevNet = cur
	}
	if l, err := load.AvgWithContext(ctx); err == nil {
		p.LoadAverage1, p.LoadAverage5, p.LoadAverage15 = pf(l.Load1), pf(l.Load5), pf(l.Load15)
	}
	return p
}

func cpuUsage(prev, cur *cpuTimes) *float64 {
	if prev == nil || cur.total <= prev.total || cur.busy < prev.busy {
		return nil
	}
	return clampPct((cur.busy - prev.busy) / (cur.total - prev.total) * 100)
}

func netRates(prev, cur *netCounters) (sent, recv *float64) {
	if prev == nil {
		return nil, nil
	}
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 || cur.sent < prev.sent || cur.recv < prev.recv {
		return nil, nil
	}
	return pf(float64(cur.sent-prev.sent) / dt), pf(float64(cur.recv-prev.recv) / dt)
}
