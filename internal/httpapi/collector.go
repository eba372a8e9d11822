package httpapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/novacron/novacron"
	"github.com/prometheus/client_golang/prometheus"
)

// VMMetricsSource gives /metrics the latest usage of every VM.
type VMMetricsSource interface {
	// Latest returns the latest sample of every VM of every tenant, with
	// its tenant and node; a VM without a recent sample is left out and a
	// value that was not measured is nil. It is called on every scrape and
	// must be quick (an in-memory read).
	Latest(ctx context.Context) ([]novacron.VMSample, error)
}

// AlertCounter gives /metrics the number of alerts by status.
type AlertCounter interface {
	// Counts returns the number of alerts in each status: "firing",
	// "acknowledged" and "resolved". It is called on every scrape.
	Counts(ctx context.Context) (map[string]int, error)
}

// Alert statuses /metrics always reports, 0 when there are none.
var alertStatuses = []string{"firing", "acknowledged", "resolved"}

// vmStates are the states novacron_vms always reports, 0 when no VM is in
// one.
var vmStates = []novacron.VMState{novacron.StateCreating, novacron.StateStopped, novacron.StateStarting,
	novacron.StateRunning, novacron.StateStopping, novacron.StateRestarting, novacron.StatePaused,
	novacron.StateMigrating, novacron.StateDeleting, novacron.StateFailed}

// vmCountTTL is how long a count of VMs by state serves scrapes: several
// Prometheus servers may scrape, and a count is a query over every VM.
const vmCountTTL = 5 * time.Second

// scrapeTimeout bounds what one scrape asks of the store and the sources.
const scrapeTimeout = 5 * time.Second

var (
	descVMs = prometheus.NewDesc("novacron_vms", "VMs by observed state.", []string{"state"}, nil)
	vmLabel = []string{"vm", "tenant", "node"}
	descCPU = prometheus.NewDesc("novacron_vm_cpu_usage_percent",
		"CPU use of a VM, percent of its allocation (latest sample).", vmLabel, nil)
	descMem = prometheus.NewDesc("novacron_vm_memory_usage_percent",
		"Memory use of a VM, percent of its allocation (latest sample).", vmLabel, nil)
	descDisk = prometheus.NewDesc("novacron_vm_disk_usage_percent",
		"Disk use of a VM, percent of its allocation (latest sample).", vmLabel, nil)
	descNetSent = prometheus.NewDesc("novacron_vm_network_sent_bytes_per_second",
		"Bytes per second a VM sent (latest sample).", vmLabel, nil)
	descNetRecv = prometheus.NewDesc("novacron_vm_network_recv_bytes_per_second",
		"Bytes per second a VM received (latest sample).", vmLabel, nil)
	descIOPS = prometheus.NewDesc("novacron_vm_disk_iops",
		"Disk operations per second of a VM (latest sample).", vmLabel, nil)
	descAlerts = prometheus.NewDesc("novacron_alerts", "Alerts by status.", []string{"status"}, nil)
	descOps    = prometheus.NewDesc("novacron_operations_total",
		"VM operations ended since the server started, by action and result.", []string{"action", "result"}, nil)
)

// fleetCollector reports the fleet at scrape time: VMs by state (counted
// from the store, cached for vmCountTTL), the VMs' latest usage and the
// alerts (from their sources, when the API has them), and operations ended.
type fleetCollector struct {
	a   *API
	log *slog.Logger

	mu      sync.Mutex
	counted time.Time
	counts  map[novacron.VMState]int
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVMs, descCPU, descMem, descDisk, descNetSent, descNetRecv, descIOPS, descAlerts, descOps} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if counts, err := c.vmCounts(ctx); err != nil {
		c.log.Warn("metrics: count VMs", "err", err)
	} else {
		for _, s := range vmStates {
			ch <- prometheus.MustNewConstMetric(descVMs, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	}
	if src := c.a.cfg.VMMetrics; src != nil {
		samples, err := src.Latest(ctx)
		if err != nil {
			c.log.Warn("metrics: latest VM samples", "err", err)
		}
		collectVMSamples(ch, samples)
	}
	if src := c.a.cfg.AlertCounts; src != nil {
		counts, err := src.Counts(ctx)
		if err != nil {
			c.log.Warn("metrics: count alerts", "err", err)
		} else {
			for _, s := range alertStatuses {
				ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.GaugeValue, float64(counts[s]), s)
			}
		}
	}
	if c.a.vms != nil {
		for _, o := range c.a.vms.OperationsEnded() {
			ch <- prometheus.MustNewConstMetric(descOps, prometheus.CounterValue, float64(o.N), o.Action, string(o.Status))
		}
	}
}

// vmCounts counts VMs by state, at most once per vmCountTTL.
func (c *fleetCollector) vmCounts(ctx context.Context) (map[novacron.VMState]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.a.now()
	if c.counts != nil && now.Sub(c.counted) < vmCountTTL {
		return c.counts, nil
	}
	counts, err := c.a.store.CountVMsByState(ctx)
	if err != nil {
		return nil, err
	}
	c.counts, c.counted = counts, now
	return counts, nil
}

// collectVMSamples reports each VM's latest sample once (the newest, if a
// source gave several) and leaves out what was not measured.
func collectVMSamples(ch chan<- prometheus.Metric, samples []novacron.VMSample) {
	latest := make(map[string]int, len(samples))
	for i, s := range samples {
		if s.VMID == "" {
			continue
		}
		if j, ok := latest[s.VMID]; !ok || s.TS.After(samples[j].TS) {
			latest[s.VMID] = i
		}
	}
	for _, i := range latest {
		s := samples[i]
		for _, v := range []struct {
			d *prometheus.Desc
			v *float64
		}{{descCPU, s.CPUUsage}, {descMem, s.MemoryUsage}, {descDisk, s.DiskUsage},
			{descNetSent, s.NetworkSent}, {descNetRecv, s.NetworkRecv}, {descIOPS, s.IOPS}} {
			if v.v == nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(v.d, prometheus.GaugeValue, *v.v, s.VMID, s.TenantID, s.NodeID)
		}
	}
}
