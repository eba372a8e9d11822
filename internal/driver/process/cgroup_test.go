package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
)

func TestGuestLimits(t *testing.T) {
	for _, tc := range []struct {
		cpus, memMB int
		pids        int64
		want        limits
	}{
		{0, 0, 0, limits{}},
		{1, 256, 4096, limits{CPUQuota: 100000, CPUPeriod: 100000, Memory: 256 << 20, Pids: 4096}},
		{4, 1, 0, limits{CPUQuota: 400000, CPUPeriod: 100000, Memory: 1 << 20}},
		{0, 65536, 10, limits{Memory: 64 << 30, Pids: 10}},
	} {
		if got := guestLimits(tc.cpus, tc.memMB, tc.pids); got != tc.want {
			t.Errorf("guestLimits(%d, %d, %d) = %+v, want %+v", tc.cpus, tc.memMB, tc.pids, got, tc.want)
		}
	}
}

func TestV1Resources(t *testing.T) {
	l := guestLimits(2, 512, 100)
	r := v1Resources(l, true)
	if *r.CPU.Quota != 200000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu = %d/%d", *r.CPU.Quota, *r.CPU.Period)
	}
	if *r.Memory.Limit != 512<<20 || r.Memory.Swap == nil || *r.Memory.Swap != 512<<20 {
		t.Errorf("memory = %v, swap %v: want limit and memory+swap at 512 MiB", *r.Memory.Limit, r.Memory.Swap)
	}
	if *r.Pids.Limit != 100 {
		t.Errorf("pids = %d", *r.Pids.Limit)
	}
	if r := v1Resources(l, false); r.Memory.Swap != nil {
		t.Errorf("swap set without swap accounting: %d", *r.Memory.Swap)
	}
	if r := v1Resources(limits{}, true); r.CPU != nil || r.Memory != nil || r.Pids != nil {
		t.Errorf("no limits gave %+v", r)
	}
}

// The cgroup v2 path (Ubuntu 24.04 and other unified hosts) is checked here
// even where the host is hybrid: its resources become these files.
func TestV2Resources(t *testing.T) {
	// The files the library writes for r, written into a plain directory.
	files := func(r *cgroup2.Resources) map[string]string {
		t.Helper()
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "g"), 0o755); err != nil {
			t.Fatal(err)
		}
		m, err := cgroup2.Load("/g", cgroup2.WithMountpoint(root))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Update(r); err != nil {
			t.Fatalf("write v2 resources: %v", err)
		}
		entries, err := os.ReadDir(filepath.Join(root, "g"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(root, "g", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = string(b)
		}
		return out
	}
	r := v2Resources(guestLimits(2, 512, 100), true)
	got := files(r)
	want := map[string]string{
		"cpu.max":         "200000 100000",
		"memory.max":      "536870912",
		"memory.swap.max": "0",
		"pids.max":        "100",
	}
	for f, v := range want {
		if got[f] != v {
			t.Errorf("%s = %q, want %q (all: %v)", f, got[f], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("files = %v, want exactly %v", got, want)
	}
	if c := r.EnabledControllers(); len(c) != 3 || c[0] != "cpu" || c[1] != "memory" || c[2] != "pids" {
		t.Errorf("controllers = %v", c)
	}

	r = v2Resources(guestLimits(0, 0, 0), false)
	if got := files(r); len(got) != 0 {
		t.Errorf("no limits wrote %v", got)
	}
	// memory and pids stay enabled: memory.events counts OOM kills.
	if c := r.EnabledControllers(); len(c) != 2 || c[0] != "memory" || c[1] != "pids" {
		t.Errorf("controllers without limits = %v", c)
	}
	if got := files(v2Resources(guestLimits(1, 64, 0), false)); got["memory.swap.max"] != "" {
		t.Errorf("swap set without swap accounting: %v", got)
	}
}

func TestParseKV(t *testing.T) {
	v1 := []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	v2 := []byte("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
	events := []byte("populated 1\nfrozen 1\n")
	for _, tc := range []struct {
		b   []byte
		key string
		n   uint64
		ok  bool
	}{
		{v1, "oom_kill", 3, true},
		{v1, "oom_kill_disable", 0, true},
		{v2, "oom_kill", 1, true},
		{v2, "oom", 2, true},
		{events, "frozen", 1, true},
		{events, "oom_kill", 0, false},
		{[]byte("oom_kill x\n"), "oom_kill", 0, false},
	} {
		n, ok := parseKV(tc.b, tc.key)
		if n != tc.n || ok != tc.ok {
			t.Errorf("parseKV(%q, %s) = %d, %v; want %d, %v", tc.b, tc.key, n, ok, tc.n, tc.ok)
		}
	}
}

func TestValidCgroupParent(t *testing.T) {
	for p, ok := range map[string]bool{
		"novacron": true, "a/b": true, "": false, "/novacron": false, "../x": false,
		"a/../b": false, "a/": false, "a//b": false, ".": false,
	} {
		if err := validCgroupParent(p); (err == nil) != ok {
			t.Errorf("validCgroupParent(%q) = %v, want ok %v", p, err, ok)
		}
	}
	if g := cgroupGroup("novacron", "x"); g != "/novacron/x" {
		t.Errorf("cgroupGroup = %q", g)
	}
}
