package process

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// usage reads a v1 cgroup's counters (block I/O only where the blkio
// controller is among the guest's).
func (c *cgroupV1) usage() (driver.Stats, error) {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return driver.Stats{}, err
	}
	var st driver.Stats
	if m.GetCPU().GetUsage() != nil {
		st.CPUSeconds = float64(m.CPU.Usage.Total) / 1e9
	}
	if m.GetMemory().GetUsage() != nil {
		st.MemoryBytes = int64(m.Memory.Usage.Usage)
	}
	if m.GetPids() != nil {
		n := int64(m.Pids.Current)
		st.Pids = &n
	}
	if b := m.GetBlkio(); b != nil {
		var rb, wb, ro, wo int64
		for _, e := range b.IoServiceBytesRecursive {
			switch strings.ToLower(e.Op) {
			case "read":
				rb += int64(e.Value)
			case "write":
				wb += int64(e.Value)
			}
		}
		for _, e := range b.IoServicedRecursive {
			switch strings.ToLower(e.Op) {
			case "read":
				ro += int64(e.Value)
			case "write":
				wo += int64(e.Value)
			}
		}
		st.DiskReadBytes, st.DiskWriteBytes, st.DiskReadOps, st.DiskWriteOps = &rb, &wb, &ro, &wo
	}
	return st, nil
}

// usage reads a v2 cgroup's counters.
func (c *cgroupV2) usage() (driver.Stats, error) {
	m, err := c.m.Stat()
	if err != nil {
		return driver.Stats{}, err
	}
	var st driver.Stats
	if m.GetCPU() != nil {
		st.CPUSeconds = float64(m.CPU.UsageUsec) / 1e6
	}
	if m.GetMemory() != nil {
		st.MemoryBytes = int64(m.Memory.Usage)
	}
	if m.GetPids() != nil {
		n := int64(m.Pids.Current)
		st.Pids = &n
	}
	if m.GetIo() != nil {
		var rb, wb, ro, wo int64
		for _, e := range m.Io.Usage {
			rb += int64(e.Rbytes)
			wb += int64(e.Wbytes)
			ro += int64(e.Rios)
			wo += int64(e.Wios)
		}
		st.DiskReadBytes, st.DiskWriteBytes, st.DiskReadOps, st.DiskWriteOps = &rb, &wb, &ro, &wo
	}
	return st, nil
}

// Stats samples a running guest's cgroup: CPU time, memory, processes and
// (where the cgroup accounts it) block I/O. A process guest shares the
// host's network, so it has no network counters of its own.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	st, err := d.Status(ctx, id)
	if err != nil {
		return driver.Stats{}, err
	}
	if st.State != driver.GuestRunning && st.State != driver.GuestPaused {
		return driver.Stats{}, novacron.Errorf(novacron.EInvalidState, "guest %s is %s, not running", id, st.State)
	}
	cg, err := loadCgroup(d.cfg.CgroupParent, id)
	if err != nil {
		return driver.Stats{}, fmt.Errorf("process: guest %s: %w", id, err)
	}
	out, err := cg.usage()
	if err != nil {
		return driver.Stats{}, fmt.Errorf("process: guest %s: cgroup %s: %w", id, filepath.Base(cgroupGroup(d.cfg.CgroupParent, id)), err)
	}
	out.SampledAt = time.Now().UTC()
	return out, nil
}
