package container

import (
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/novacron/novacron/internal/driver/guestcmd"
)

// bundleParams is what buildSpec makes a container's OCI config from. The
// lifecycle code fills it from the driver.Spec, the parsed config and the
// paths it chose; nothing in it comes unchecked from a request.
type bundleParams struct {
	// ID is the VM's id; Hostname is the VM's name, made a DNS label by
	// hostnameOf.
	ID, Hostname string
	// UID and GID are the guest's unprivileged host ids (no user namespace:
	// they are also its ids inside the container).
	UID, GID int
	// CPUs and MemoryMB are the VM's size; 0 is no limit.
	CPUs, MemoryMB int
	// PidsMax bounds the container's tasks; 0 is no limit.
	PidsMax int64
	// Args is the command to run; Env its NAME=value variables, to which
	// PATH and HOME defaults are added; Cwd its working directory inside
	// the container ("" is "/").
	Args, Env []string
	Cwd       string
	// Rootfs is the container's root: the mounted overlay.
	Rootfs string
	// CgroupsPath is handed to runc as is.
	CgroupsPath string
}

// cpuPeriod is the CFS period, in microseconds, that a CPU quota refers to.
const cpuPeriod = 100000

// guestHome is HOME unless the config sets it: guests have no passwd entry,
// and "/" is what Docker gives such a user.
const guestHome = "/"

// Resource settings that are not per VM.
const (
	// Open files: a guest may raise its soft limit up to nofileHard. runc
	// cannot set a hard limit above its own without CAP_SYS_RESOURCE, so
	// this stays below what hosts give services (systemd: 524288).
	nofileSoft = 1024
	nofileHard = 16384
	devSize    = "size=65536k"
	shmSize    = "size=65536k"
)

// maskedPaths are hidden from the guest (an empty file or directory is
// mounted over them): runc's default list, plus powercap, whose energy
// counters are a side channel (CVE-2020-8694; Docker masks it too).
var maskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
	"/proc/scsi",
}

// readonlyPaths are mounted read-only: runc's default list.
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// allowedDevices are the character devices a guest may use (read, write,
// mknod) past the default deny: the ones runc creates in every container's
// /dev, and the pseudo-terminals.
var allowedDevices = []struct {
	major, minor int64 // minor -1: every minor
}{
	{1, 3},    // null
	{1, 5},    // zero
	{1, 7},    // full
	{1, 8},    // random
	{1, 9},    // urandom
	{5, 0},    // tty
	{5, 2},    // ptmx
	{136, -1}, // pts/*
}

// buildSpec returns the OCI runtime config of a container. It does no I/O.
//
// The guest runs as its own unprivileged uid with no capabilities at all
// (every set empty) and no new privileges, so setuid files and file
// capabilities in the image give it nothing. It has its own pid, ipc, uts,
// mount and network namespaces; the network namespace has only lo, and
// net.ipv4.ip_unprivileged_port_start=0 (a per-namespace setting) lets it
// bind ports below 1024 without CAP_NET_BIND_SERVICE. The root is the
// writable overlay; /tmp is a tmpfs (at most half the memory limit, charged
// to the container's memory cgroup), so a guest has somewhere to write even
// when its image's directories belong to root.
func buildSpec(p bundleParams) *specs.Spec {
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User: specs.User{UID: uint32(p.UID), GID: uint32(p.GID)},
			Args: slices.Clone(p.Args),
			Env:  specEnv(p.Env),
			Cwd:  cwd,
			// Empty sets, not nil: runc drops every capability.
			Capabilities: &specs.LinuxCapabilities{
				Bounding: []string{}, Effective: []string{}, Inheritable: []string{},
				Permitted: []string{}, Ambient: []string{},
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: nofileSoft, Hard: nofileHard}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: p.Rootfs, Readonly: false},
		Hostname: hostnameOf(p.Hostname),
		Mounts:   mounts(p.MemoryMB),
		Linux: &specs.Linux{
			Sysctl:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
			Resources:   resources(p),
			CgroupsPath: p.CgroupsPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			MaskedPaths:   slices.Clone(maskedPaths),
			ReadonlyPaths: slices.Clone(readonlyPaths),
		},
	}
	return s
}

// specEnv is env with PATH and HOME defaults added when it lacks them,
// sorted.
func specEnv(env []string) []string {
	out := slices.Clone(env)
	for _, d := range []string{"PATH=" + guestcmd.DefaultPath, "HOME=" + guestHome} {
		name := d[:strings.IndexByte(d, '=')+1]
		if !slices.ContainsFunc(out, func(e string) bool { return strings.HasPrefix(e, name) }) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

func mounts(memoryMB int) []specs.Mount {
	tmp := []string{"nosuid", "nodev", "mode=1777"}
	if memoryMB > 0 {
		tmp = append(tmp, "size="+strconv.Itoa(max(memoryMB*1024/2, 1024))+"k")
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", devSize}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", shmSize}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: tmp},
	}
}

func resources(p bundleParams) *specs.LinuxResources {
	r := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	for _, d := range allowedDevices {
		rule := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(d.major), Access: "rwm"}
		if d.minor >= 0 {
			rule.Minor = ptr(d.minor)
		}
		r.Devices = append(r.Devices, rule)
	}
	if p.CPUs > 0 {
		r.CPU = &specs.LinuxCPU{Quota: ptr(int64(p.CPUs) * cpuPeriod), Period: ptr(uint64(cpuPeriod))}
	}
	if p.MemoryMB > 0 {
		limit := int64(p.MemoryMB) << 20
		// Swap is memory plus swap: equal to the limit, the guest gets no swap.
		r.Memory = &specs.LinuxMemory{Limit: ptr(limit), Swap: ptr(limit)}
	}
	if p.PidsMax > 0 {
		r.Pids = &specs.LinuxPids{Limit: ptr(p.PidsMax)}
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// hostnameOf makes a VM's name a valid hostname, a DNS label: lower case
// letters, digits and '-' kept, any run of other characters one '-', no '-'
// at either end, at most 63 characters; "guest" when nothing is left. A
// name that already is such a label is returned as is.
func hostnameOf(name string) string {
	b := make([]byte, 0, 64)
	other := false // a run of other characters since the last one kept
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if other && len(b) > 0 && b[len(b)-1] != '-' {
				b = append(b, '-')
			}
			b = append(b, byte(r))
		case r == '-':
			if len(b) > 0 {
				b = append(b, '-')
			}
		default:
			other = true
			continue
		}
		other = false
		if len(b) > 63 {
			break
		}
	}
	h := strings.TrimRight(string(b[:min(len(b), 63)]), "-")
	if h == "" {
		return "guest"
	}
	return h
}
