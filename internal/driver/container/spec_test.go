package container

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/novacron/novacron/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const goldenID = "0b6c3e8e-5a3b-4b8e-9d55-7f0f6b1c2d3e"

func goldenParams() bundleParams {
	dir := "/var/lib/novacron/guests/container/" + goldenID
	return bundleParams{ID: goldenID, Hostname: "web1", UID: 201234, GID: 201234,
		CPUs: 2, MemoryMB: 512, PidsMax: 1024,
		Args: []string{"/bin/sh", "-c", "exec httpd -f -p 80"}, Env: []string{"A=1"}, Cwd: "/srv",
		Rootfs: dir + "/rootfs", CgroupsPath: "/novacron/" + goldenID}
}

func TestBuildSpecGolden(t *testing.T) {
	unlimited := goldenParams()
	unlimited.CPUs, unlimited.MemoryMB, unlimited.PidsMax = 0, 0, 0
	unlimited.Env, unlimited.Cwd = nil, ""
	unlimited.Hostname = "Web_Server.example"

	ownPath := goldenParams()
	ownPath.Env = []string{"PATH=/opt/bin", "HOME=/srv", "Z=last"}
	ownPath.CPUs, ownPath.MemoryMB = 1, 64

	for name, p := range map[string]bundleParams{"default": goldenParams(), "unlimited": unlimited, "own-path": ownPath} {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(buildSpec(p), "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("buildSpec(%s) differs from %s (go test -update rewrites it):\n%s", name, path, got)
			}
		})
	}
}

// TestBuildSpecFields reads the config back as runc would and checks what
// the guest's isolation rests on, so a golden file rewritten in haste
// cannot quietly lose it.
func TestBuildSpecFields(t *testing.T) {
	p := goldenParams()
	raw, err := json.Marshal(buildSpec(p))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("decode the config: %v", err)
	}
	if s.Version != specs.Version || s.Process == nil || s.Root == nil || s.Linux == nil || s.Linux.Resources == nil {
		t.Fatalf("config lacks a part: %s", raw)
	}
	pr := s.Process
	if pr.User.UID != 201234 || pr.User.GID != 201234 || len(pr.User.AdditionalGids) != 0 {
		t.Errorf("user = %+v, want 201234:201234", pr.User)
	}
	if !pr.NoNewPrivileges || pr.Terminal {
		t.Errorf("noNewPrivileges = %v, terminal = %v", pr.NoNewPrivileges, pr.Terminal)
	}
	c := pr.Capabilities
	if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Inheritable)+len(c.Permitted)+len(c.Ambient) != 0 {
		t.Errorf("capabilities = %+v, want every set empty (nil would keep runc's defaults)", c)
	}
	if !slices.Equal(pr.Args, p.Args) || pr.Cwd != "/srv" {
		t.Errorf("args %q cwd %q", pr.Args, pr.Cwd)
	}
	if want := []string{"A=1", "HOME=/", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}; !slices.Equal(pr.Env, want) {
		t.Errorf("env = %q, want %q", pr.Env, want)
	}
	if len(pr.Rlimits) != 1 || pr.Rlimits[0].Type != "RLIMIT_NOFILE" || pr.Rlimits[0].Soft > pr.Rlimits[0].Hard {
		t.Errorf("rlimits = %+v", pr.Rlimits)
	}
	if s.Root.Path != p.Rootfs || s.Root.Readonly {
		t.Errorf("root = %+v", s.Root)
	}
	if s.Hostname != "web1" {
		t.Errorf("hostname = %q", s.Hostname)
	}

	l := s.Linux
	var ns []string
	for _, n := range l.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joins %s, want a new one", n.Type, n.Path)
		}
		ns = append(ns, string(n.Type))
	}
	slices.Sort(ns)
	if want := []string{"ipc", "mount", "network", "pid", "uts"}; !slices.Equal(ns, want) {
		t.Errorf("namespaces = %q, want %q (no user namespace: the guest's uid is a host uid)", ns, want)
	}
	if len(l.UIDMappings)+len(l.GIDMappings) != 0 || l.CgroupsPath != p.CgroupsPath {
		t.Errorf("id mappings %v %v, cgroupsPath %q", l.UIDMappings, l.GIDMappings, l.CgroupsPath)
	}
	for _, m := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/sched_debug"} {
		if !slices.Contains(l.MaskedPaths, m) {
			t.Errorf("%s is not masked", m)
		}
	}
	for _, m := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq"} {
		if !slices.Contains(l.ReadonlyPaths, m) {
			t.Errorf("%s is not read-only", m)
		}
	}

	r := l.Resources
	if r.CPU == nil || *r.CPU.Quota != 200000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu = %+v, want quota 200000 per 100000", r.CPU)
	}
	if r.Memory == nil || *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 512<<20 {
		t.Errorf("memory = %+v, want limit and swap 512 MiB", r.Memory)
	}
	if r.Pids == nil || *r.Pids.Limit != 1024 {
		t.Errorf("pids = %+v", r.Pids)
	}
	if len(r.Devices) == 0 || r.Devices[0].Allow || r.Devices[0].Access != "rwm" || r.Devices[0].Type != "" && r.Devices[0].Type != "a" {
		t.Fatalf("devices start with %+v, want deny all", r.Devices)
	}
	allowed := map[[2]int64]bool{}
	for _, d := range r.Devices[1:] {
		if !d.Allow || d.Type != "c" || d.Major == nil {
			t.Errorf("device rule %+v is not an allowed character device", d)
			continue
		}
		minor := int64(-1)
		if d.Minor != nil {
			minor = *d.Minor
		}
		allowed[[2]int64{*d.Major, minor}] = true
	}
	for _, d := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 2}, {136, -1}} {
		if !allowed[d] {
			t.Errorf("device %d:%d not allowed", d[0], d[1])
		}
	}
	if len(allowed) != 8 {
		t.Errorf("allowed devices = %v, want exactly the 8 standard ones", allowed)
	}

	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		if _, dup := mounts[m.Destination]; dup {
			t.Errorf("%s mounted twice", m.Destination)
		}
		mounts[m.Destination] = m
		if m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind") {
			t.Errorf("%s is a bind mount of the host's %s", m.Destination, m.Source)
		}
		if !slices.Contains(m.Options, "nosuid") {
			t.Errorf("%s is mounted without nosuid", m.Destination)
		}
	}
	for dest, typ := range map[string]string{"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
		"/dev/mqueue": "mqueue", "/sys": "sysfs", "/tmp": "tmpfs"} {
		if mounts[dest].Type != typ {
			t.Errorf("%s is %q, want %s", dest, mounts[dest].Type, typ)
		}
	}
	if !slices.Contains(mounts["/sys"].Options, "ro") || !slices.Contains(mounts["/sys/fs/cgroup"].Options, "ro") {
		t.Errorf("/sys or its cgroups are writable")
	}
	if !slices.Contains(mounts["/tmp"].Options, "mode=1777") || !slices.Contains(mounts["/tmp"].Options, "size=262144k") {
		t.Errorf("/tmp options %q, want mode=1777 and half the memory", mounts["/tmp"].Options)
	}
}

func TestBuildSpecIsACopy(t *testing.T) {
	p := goldenParams()
	s := buildSpec(p)
	s.Process.Args[0] = "changed"
	s.Linux.MaskedPaths[0] = "changed"
	if p.Args[0] == "changed" || buildSpec(p).Linux.MaskedPaths[0] == "changed" {
		t.Fatal("buildSpec shares slices with its input or between calls")
	}
}

func TestHostnameOf(t *testing.T) {
	for name, want := range map[string]string{
		"web1":                         "web1",
		"web-1":                        "web-1",
		"a--b":                         "a--b",
		"Web_Server.example.com":       "web-server-example-com",
		"  db  primary ":               "db-primary",
		"-lead-":                       "lead",
		"a - b":                        "a-b",
		"a_-_b":                        "a-b",
		"ünïcode":                      "n-code",
		"日本":                           "guest",
		"":                             "guest",
		"---":                          "guest",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "_b": strings.Repeat("a", 62),
		strings.Repeat("ab", 40):       strings.Repeat("ab", 31) + "a",
	} {
		got := hostnameOf(name)
		if got != want {
			t.Errorf("hostnameOf(%q) = %q, want %q", name, got, want)
		}
		if hostnameOf(got) != got {
			t.Errorf("hostnameOf(%q) = %q is not stable", got, hostnameOf(got))
		}
	}
}

// TestBuildSpecUnderRunc runs a config from buildSpec with runc, on a busybox
// rootfs unpacked and mounted by this package, and checks from inside what
// the guest's isolation rests on.
func TestBuildSpecUnderRunc(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Missing(t, "runc", "runc is not installed (apt-get install runc)")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		testenv.Missing(t, "runc", "/bin/busybox is missing (apt-get install busybox-static)")
	}
	dir := t.TempDir()
	image := writeFile(t, dir, "image", tarball(t, []member{
		{name: "bin/busybox", body: string(bb), mode: 0o755},
		{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		{name: "srv/", typ: tar.TypeDir},
	}))
	lower, bundle := filepath.Join(dir, "lower"), filepath.Join(dir, "bundle")
	if err := unpackRootfs(image, lower); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{bundle, bundle + "/rootfs", dir + "/upper", dir + "/work"} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := mountOverlay(lower, dir+"/upper", dir+"/work", bundle+"/rootfs"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmountOverlay(bundle + "/rootfs"); err != nil {
			t.Error(err)
		}
	})

	id := fmt.Sprintf("novacron-test-spec-%d", os.Getpid())
	script := `bb=/bin/busybox
$bb id -u; $bb id -g
$bb grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status | $bb tr -s '\t' ' '
$bb hostname; $bb pwd
$bb tail -n +3 /proc/net/dev | $bb cut -d: -f1 | $bb tr -d ' '
$bb touch /tmp/ok && echo tmp writable
$bb touch /srv/x 2>/dev/null || echo image not writable
echo x 2>/dev/null >/proc/sys/kernel/hostname || echo proc/sys read-only
$bb nc -l -p 80 </dev/null 2>&1 & $bb sleep 0.3; $bb netstat -ltn | $bb grep -c ':80 '
$bb cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || $bb cat /sys/fs/cgroup/memory.max
$bb cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || $bb cat /sys/fs/cgroup/pids.max
echo $HOME $PATH $GREETING`
	s := buildSpec(bundleParams{ID: id, Hostname: "Web Server 1", UID: 201234, GID: 201235, CPUs: 1, MemoryMB: 64, PidsMax: 32,
		Args: []string{"/bin/sh", "-c", script}, Env: []string{"GREETING=hi"}, Cwd: "/srv",
		Rootfs: bundle + "/rootfs", CgroupsPath: "/" + id})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle+"/config.json", b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runcRoot := filepath.Join(dir, "runc")
	t.Cleanup(func() { _ = exec.Command("runc", "--root", runcRoot, "delete", "--force", id).Run() })
	out, err := exec.CommandContext(ctx, "runc", "--root", runcRoot, "run", "--bundle", bundle, id).CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	want := `201234
201235
CapInh: 0000000000000000
CapPrm: 0000000000000000
CapEff: 0000000000000000
CapBnd: 0000000000000000
CapAmb: 0000000000000000
NoNewPrivs: 1
web-server-1
/srv
lo
tmp writable
image not writable
proc/sys read-only
1
67108864
32
/ /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin hi
`
	if string(out) != want {
		t.Errorf("inside the container:\n%s\nwant:\n%s", out, want)
	}
}
