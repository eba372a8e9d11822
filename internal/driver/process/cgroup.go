package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/novacron/novacron/internal/driver"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cpuPeriod is the CFS period (µs) a guest's CPU quota is expressed in: the
// kernel's default, the same on cgroup v1 and v2.
const cpuPeriod = 100000

// limits are a guest's cgroup limits; zero means no limit.
type limits struct {
	// CPUQuota is the CPU time (µs) the guest may use per CPUPeriod.
	CPUQuota  int64
	CPUPeriod uint64
	// Memory is the memory limit in bytes. Swap is never allowed beyond it.
	Memory int64
	// Pids bounds the guest's processes and threads.
	Pids int64
}

// guestLimits turns a guest's spec into cgroup limits: cpus whole CPUs of
// quota per period, memoryMB MiB of memory.
func guestLimits(cpus, memoryMB int, pidsMax int64) limits {
	var l limits
	if cpus > 0 {
		l.CPUQuota, l.CPUPeriod = int64(cpus)*cpuPeriod, cpuPeriod
	}
	if memoryMB > 0 {
		l.Memory = int64(memoryMB) << 20
	}
	if pidsMax > 0 {
		l.Pids = pidsMax
	}
	return l
}

// v1Resources are l for the cgroup v1 controllers. With swap accounting
// (memory.memsw.*), memory+swap is capped at the memory limit: no swap.
func v1Resources(l limits, swapAccounting bool) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if l.CPUQuota > 0 {
		q, p := l.CPUQuota, l.CPUPeriod
		r.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if l.Memory > 0 {
		m := l.Memory
		r.Memory = &specs.LinuxMemory{Limit: &m}
		if swapAccounting {
			s := l.Memory
			r.Memory.Swap = &s
		}
	}
	if l.Pids > 0 {
		p := l.Pids
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
	return r
}

// v2Resources are l for the cgroup v2 controllers. The memory and pids
// controllers are always enabled (memory.events counts OOM kills); with
// swap accounting (memory.swap.max), swap is 0: v2 counts it apart from
// memory.
func v2Resources(l limits, swapAccounting bool) *cgroup2.Resources {
	r := &cgroup2.Resources{Memory: &cgroup2.Memory{}, Pids: &cgroup2.Pids{}}
	if l.CPUQuota > 0 {
		q, p := l.CPUQuota, l.CPUPeriod
		r.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&q, &p)}
	}
	if l.Memory > 0 {
		m := l.Memory
		r.Memory.Max = &m
		if swapAccounting {
			var zero int64
			r.Memory.Swap = &zero
		}
	}
	if l.Pids > 0 {
		r.Pids.Max = l.Pids
	}
	return r
}

// guestCgroup is the cgroup (v1: one per controller, v2: one) a guest runs
// in. The shim creates it and the guest's init stage joins it before exec.
type guestCgroup interface {
	// ProcsFiles are the cgroup.procs files a process writes its pid to.
	ProcsFiles() []string
	Freeze() error
	Thaw() error
	Frozen() (bool, error)
	// Pids lists the processes in the cgroup.
	Pids() ([]int, error)
	// OOMKills is the number of processes the OOM killer killed in it.
	OOMKills() (uint64, error)
	// Delete removes the (empty) cgroup.
	Delete() error
	// usage reads the cgroup's counters.
	usage() (driver.Stats, error)
}

// errNoCgroup is returned by loadCgroup for a cgroup that does not exist.
var errNoCgroup = errors.New("cgroup does not exist")

// cgroupGroup is the path of a guest's cgroup below each hierarchy's root.
func cgroupGroup(parent, id string) string { return "/" + parent + "/" + id }

// validCgroupParent checks a configured cgroup parent: a relative path of
// plain names.
func validCgroupParent(p string) error {
	if p == "" || filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("cgroup parent %q must be a clean relative path", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "." || el == ".." || strings.ContainsAny(el, "\x00\n") {
			return fmt.Errorf("cgroup parent %q must be a clean relative path", p)
		}
	}
	return nil
}

// cgroupMode tells which cgroup API the host offers.
func cgroupMode() (unified bool, err error) {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return true, nil
	case cgroups.Legacy, cgroups.Hybrid:
		return false, nil
	}
	return false, errors.New("cgroups are not available on this host")
}

// createCgroup creates the guest's cgroup with limits l, replacing an
// existing one (its leftover processes are killed).
func createCgroup(parent, id string, l limits) (guestCgroup, error) {
	if old, err := loadCgroup(parent, id); err == nil {
		if err := killCgroup(old, 5*time.Second); err != nil {
			return nil, err
		}
		if err := old.Delete(); err != nil {
			return nil, fmt.Errorf("remove stale cgroup: %w", err)
		}
	} else if !errors.Is(err, errNoCgroup) {
		return nil, err
	}
	unified, err := cgroupMode()
	if err != nil {
		return nil, err
	}
	group := cgroupGroup(parent, id)
	if unified {
		m, err := cgroup2.NewManager(cgroupV2Root, group, v2Resources(l, false))
		if err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", group, err)
		}
		dir := filepath.Join(cgroupV2Root, group)
		// memory.swap.max exists only where swap is accounted.
		if l.Memory > 0 && fileExists(filepath.Join(dir, "memory.swap.max")) {
			if err := m.Update(v2Resources(l, true)); err != nil {
				return nil, fmt.Errorf("cgroup %s: limit swap: %w", group, err)
			}
		}
		return &cgroupV2{m: m, dir: dir}, nil
	}
	h, err := v1Hierarchy()
	if err != nil {
		return nil, err
	}
	swap := fileExists(filepath.Join(v1Root, "memory", "memory.memsw.limit_in_bytes"))
	cg, err := cgroup1.New(cgroup1.StaticPath(group), v1Resources(l, swap), cgroup1.WithHierarchy(h))
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", group, err)
	}
	return newCgroupV1(cg, group)
}

// loadCgroup opens an existing guest cgroup, errNoCgroup when there is none.
func loadCgroup(parent, id string) (guestCgroup, error) {
	unified, err := cgroupMode()
	if err != nil {
		return nil, err
	}
	group := cgroupGroup(parent, id)
	if unified {
		dir := filepath.Join(cgroupV2Root, group)
		if !fileExists(dir) {
			return nil, errNoCgroup
		}
		m, err := cgroup2.Load(group)
		if err != nil {
			return nil, err
		}
		return &cgroupV2{m: m, dir: dir}, nil
	}
	h, err := v1Hierarchy()
	if err != nil {
		return nil, err
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(group), cgroup1.WithHierarchy(h))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, errNoCgroup
	}
	if err != nil {
		return nil, err
	}
	return newCgroupV1(cg, group)
}

const (
	cgroupV2Root = "/sys/fs/cgroup"
	v1Root       = "/sys/fs/cgroup"
)

// v1Controllers are the cgroup v1 controllers a guest gets. The ones marked
// true are required.
var v1Controllers = map[cgroup1.Name]bool{
	cgroup1.Cpu:     true,
	cgroup1.Cpuacct: false,
	cgroup1.Memory:  true,
	cgroup1.Pids:    true,
	cgroup1.Freezer: true,
}

// v1Hierarchy is the host's v1 hierarchy reduced to v1Controllers.
func v1Hierarchy() (cgroup1.Hierarchy, error) {
	all, err := cgroup1.Default()
	if err != nil {
		return nil, fmt.Errorf("cgroup v1: %w", err)
	}
	var subs []cgroup1.Subsystem
	have := map[cgroup1.Name]bool{}
	for _, s := range all {
		if _, ok := v1Controllers[s.Name()]; ok {
			subs = append(subs, s)
			have[s.Name()] = true
		}
	}
	for n, required := range v1Controllers {
		if required && !have[n] {
			return nil, fmt.Errorf("cgroup v1: the %s controller is not mounted", n)
		}
	}
	return func() ([]cgroup1.Subsystem, error) { return subs, nil }, nil
}

// cgroupV1 is a guest cgroup on a v1 (or hybrid) host: one directory per
// controller.
type cgroupV1 struct {
	cg   cgroup1.Cgroup
	dirs map[cgroup1.Name]string
}

func newCgroupV1(cg cgroup1.Cgroup, group string) (*cgroupV1, error) {
	c := &cgroupV1{cg: cg, dirs: map[cgroup1.Name]string{}}
	for _, s := range cg.Subsystems() {
		p, ok := s.(interface{ Path(string) string })
		if !ok {
			continue
		}
		c.dirs[s.Name()] = p.Path(group)
	}
	for _, n := range []cgroup1.Name{cgroup1.Freezer, cgroup1.Memory} {
		if c.dirs[n] == "" {
			return nil, fmt.Errorf("cgroup v1: %s controller missing for %s", n, group)
		}
	}
	return c, nil
}

func (c *cgroupV1) ProcsFiles() []string {
	var out []string
	for _, d := range c.dirs {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	slices.Sort(out)
	return out
}

func (c *cgroupV1) Freeze() error {
	return setFreezer(filepath.Join(c.dirs[cgroup1.Freezer], "freezer.state"), "FROZEN", c.Frozen)
}

func (c *cgroupV1) Thaw() error {
	err := setFreezer(filepath.Join(c.dirs[cgroup1.Freezer], "freezer.state"), "THAWED", func() (bool, error) {
		f, err := c.Frozen()
		return !f, err
	})
	return err
}

func (c *cgroupV1) Frozen() (bool, error) {
	b, err := os.ReadFile(filepath.Join(c.dirs[cgroup1.Freezer], "freezer.state"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "FROZEN", nil
}

func (c *cgroupV1) Pids() ([]int, error) {
	return readPids(filepath.Join(c.dirs[cgroup1.Freezer], "cgroup.procs"))
}

func (c *cgroupV1) OOMKills() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(c.dirs[cgroup1.Memory], "memory.oom_control"))
	if err != nil {
		return 0, err
	}
	n, _ := parseKV(b, "oom_kill")
	return n, nil
}

func (c *cgroupV1) Delete() error {
	return retryBusy(func() error {
		err := c.cg.Delete()
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return nil
		}
		return err
	})
}

// cgroupV2 is a guest cgroup on a unified (v2) host.
type cgroupV2 struct {
	m   *cgroup2.Manager
	dir string
}

func (c *cgroupV2) ProcsFiles() []string { return []string{filepath.Join(c.dir, "cgroup.procs")} }

func (c *cgroupV2) Freeze() error {
	return setFreezer(filepath.Join(c.dir, "cgroup.freeze"), "1", c.Frozen)
}

func (c *cgroupV2) Thaw() error {
	return setFreezer(filepath.Join(c.dir, "cgroup.freeze"), "0", func() (bool, error) {
		f, err := c.Frozen()
		return !f, err
	})
}

func (c *cgroupV2) Frozen() (bool, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	n, _ := parseKV(b, "frozen")
	return n == 1, nil
}

func (c *cgroupV2) Pids() ([]int, error) { return readPids(filepath.Join(c.dir, "cgroup.procs")) }

func (c *cgroupV2) OOMKills() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "memory.events"))
	if err != nil {
		return 0, err
	}
	n, _ := parseKV(b, "oom_kill")
	return n, nil
}

func (c *cgroupV2) Delete() error {
	return retryBusy(func() error {
		err := c.m.Delete()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	})
}

// freezeTimeout bounds how long a freeze or thaw may take: a task stuck in
// the kernel can keep a v1 cgroup FREEZING.
const freezeTimeout = 5 * time.Second

// setFreezer writes want to a freezer file until done reports the state
// reached, or the timeout.
func setFreezer(file, want string, done func() (bool, error)) error {
	deadline := time.Now().Add(freezeTimeout)
	for {
		if err := os.WriteFile(file, []byte(want), 0); err != nil {
			return err
		}
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not reached after %s", file, want, freezeTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// killCgroup kills every process in cg (thawing it, since a frozen task
// only dies once thawed on v1) and waits up to timeout until it is empty.
func killCgroup(cg guestCgroup, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := cg.Pids()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if f, _ := cg.Frozen(); f {
			_ = cg.Thaw()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survive SIGKILL", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retryBusy retries a cgroup removal for a short while: the kernel
// refuses it (EBUSY) until the last killed task is fully gone.
func retryBusy(f func() error) error {
	var err error
	for range 100 {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// readPids reads a cgroup.procs file. Zombies are not listed there.
func readPids(file string) ([]int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// parseKV finds "key value" in a cgroup key-value file (memory.events,
// memory.oom_control, cgroup.events).
func parseKV(b []byte, key string) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
