package container_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/container"
	"github.com/novacron/novacron/internal/driver/drivertest"
	"github.com/novacron/novacron/internal/driver/process"
	"github.com/novacron/novacron/internal/testenv"
)

// TestMain lets the test binary be the shim, as the novacron binary is in
// production.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := process.RunShim(ctx, os.Args[2:])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cgroupParent keeps the tests' cgroups apart from a real agent's.
const cgroupParent = "novacron-test-container"

// requireRunc skips (fails under NOVACRON_TEST_REQUIRE) without runc, root
// or a static busybox.
func requireRunc(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Missing(t, "runc", "runc is not installed (apt-get install runc)")
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "containers need root")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "runc", "/bin/busybox is missing (apt-get install busybox-static)")
	}
}

// BusyboxRootfs writes a busybox root file system as a tarball named by
// its sha256 (as the agent's image cache names images) into dir, and
// returns its path.
func busyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = time.Unix(1700000000, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if len(body) > 0 {
			if _, err := tw.Write(body); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/", "root/", "srv/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, app := range []string{"sh", "sleep", "echo", "cat", "id", "hostname", "ls", "true", "printf", "yes", "head", "wc"} {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + app, Linkname: "busybox", Mode: 0o777}, nil)
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))}, passwd)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(dir, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newDir returns a short directory (unix socket paths are short), removed
// when the test ends.
func newDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newDriver(t *testing.T, dir string) *container.Driver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d, err := container.New(container.Config{Dir: dir, ShimCommand: []string{exe, "shim"}, CgroupParent: cgroupParent})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var nextUID atomic.Int32

func init() { nextUID.Store(203000) }

func sh(script string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"command": []string{"/bin/sh", "-c", script}})
	return b
}

func TestConformance(t *testing.T) {
	requireRunc(t)
	images := newDir(t)
	rootfs := busyboxRootfs(t, images)
	uid := int(nextUID.Add(1))
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newDriver(t, newDir(t)) }, drivertest.Config{
		// As PID 1 of its namespace, a shell needs a trap to end on
		// SIGTERM, and ignores one that comes before the trap is set.
		Run:          sh(`trap "exit 0" TERM; echo stoppable; while :; do sleep 0.1; done`),
		RunReadyLine: "stoppable",
		Exit3:        sh(`sleep 0.2; exit 3`),
		IgnoreStop:   sh(`trap "" TERM; echo ignoring; while :; do sleep 0.1; done`),
		ReadyLine:    "ignoring",
		Output:       sh(`echo one; echo two; echo three; while :; do sleep 0.1; done`),
		OutputLines:  []string{"one", "two", "three"},
		UID:          uid, GID: uid,
		Prepare: func(spec *driver.Spec) { spec.BaseImage = rootfs },
	})
}

// guest is a spec of a container running script in the busybox rootfs.
func guest(t *testing.T, rootfs string, config json.RawMessage) driver.Spec {
	uid := int(nextUID.Add(1))
	id := uuid.NewString()
	return driver.Spec{ID: id, Name: "web_" + id[:4], CPUs: 1, MemoryMB: 64, UID: uid, GID: uid,
		Config: config, BaseImage: rootfs, BaseImageFormat: "rootfs"}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, ctx context.Context, d *container.Driver, spec driver.Spec) {
	t.Helper()
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = d.Stop(ctx, spec.ID, 0, true)
		if err := d.Delete(ctx, spec.ID); err != nil {
			t.Errorf("cleanup: Delete: %v", err)
		}
	})
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func waitLogs(t *testing.T, ctx context.Context, d *container.Driver, id, want string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := d.Logs(ctx, id, 0)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs %q do not show %q", b, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupFile reads a file of the container's cgroup, v2 or v1.
func cgroupFile(t *testing.T, pid int, v1controller, v1file, v2file string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var p string
		switch {
		case parts[0] == "0" && parts[1] == "" && fileExists("/sys/fs/cgroup/cgroup.controllers"):
			p = filepath.Join("/sys/fs/cgroup", parts[2], v2file)
		case strings.Contains(","+parts[1]+",", ","+v1controller+","):
			p = filepath.Join("/sys/fs/cgroup", parts[1], parts[2], v1file)
		default:
			continue
		}
		out, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return strings.TrimSpace(string(out))
	}
	t.Fatalf("no %s cgroup for pid %d in %s", v1controller, pid, b)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestContainer: what a user checks of a running container: its own uid,
// hostname, limits in its cgroup, a loopback-only network, a frozen pause,
// stats, and a delete that leaves nothing.
func TestContainer(t *testing.T) {
	requireRunc(t)
	ctx := testContext(t)
	dir := newDir(t)
	d := newDriver(t, dir)
	rootfs := busyboxRootfs(t, newDir(t))
	spec := guest(t, rootfs, sh(`echo uid=$(id -u) host=$(hostname); ls /sys/class/net; echo written > /tmp/f && cat /tmp/f; echo x > /bin/nope 2>/dev/null || echo ro-root; exec sleep 3600`))
	spec.CPUs, spec.MemoryMB = 2, 96
	start(t, ctx, d, spec)
	logs := waitLogs(t, ctx, d, spec.ID, "ro-root")
	if !strings.Contains(logs, fmt.Sprintf("uid=%d host=web-%s", spec.UID, spec.ID[:4])) {
		t.Errorf("identity: %q", logs)
	}
	if !strings.Contains(logs, "lo\n") || strings.Contains(logs, "eth0") || !strings.Contains(logs, "written") {
		t.Errorf("network or writable tmp: %q", logs)
	}
	st, err := d.Status(ctx, spec.ID)
	if err != nil || st.State != driver.GuestRunning || st.PID == 0 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if mem := cgroupFile(t, st.PID, "memory", "memory.limit_in_bytes", "memory.max"); mem != strconv.Itoa(96<<20) {
		t.Errorf("memory limit %s, want %d", mem, 96<<20)
	}
	if pids := cgroupFile(t, st.PID, "pids", "pids.max", "pids.max"); pids != "4096" {
		t.Errorf("pids limit %s", pids)
	}
	if fileExists("/sys/fs/cgroup/cgroup.controllers") {
		if cpu := cgroupFile(t, st.PID, "cpu", "", "cpu.max"); cpu != "200000 100000" {
			t.Errorf("cpu.max %s", cpu)
		}
	} else if q := cgroupFile(t, st.PID, "cpu", "cpu.cfs_quota_us", ""); q != "200000" {
		t.Errorf("cpu quota %s", q)
	}

	stats, err := d.Stats(ctx, spec.ID)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if stats.MemoryBytes <= 0 || stats.Pids == nil || *stats.Pids < 1 || stats.NetworkRxBytes == nil {
		t.Errorf("Stats = %+v", stats)
	}

	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if st, _ := d.Status(ctx, spec.ID); st.State != driver.GuestPaused {
		t.Fatalf("Status after Pause = %+v", st)
	}
	if f := cgroupFile(t, st.PID, "freezer", "freezer.state", "cgroup.freeze"); f != "FROZEN" && f != "1" {
		t.Errorf("freezer: %s", f)
	}
	if err := d.Resume(ctx, spec.ID); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if err := d.Stop(ctx, spec.ID, time.Second, false); err != nil {
		t.Fatal(err)
	}
	st, _ = d.Status(ctx, spec.ID)
	if st.State != driver.GuestExited || st.ExitCode == nil || *st.ExitCode != 137 {
		t.Fatalf("Status after a stop of a shell that ignores TERM = %+v, want killed", st)
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "guests", spec.ID)); !os.IsNotExist(err) {
		t.Errorf("the guest's directory is left: %v", err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), spec.ID) {
		t.Errorf("a mount of the guest is left")
	}
	if out, err := exec.Command("runc", "--root", filepath.Join(dir, "runc"), "list", "-q").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("runc still lists %q (%v)", out, err)
	}
}

// TestImageCommand: a VM without a command runs its image's default one;
// with neither, it cannot be created.
func TestImageCommand(t *testing.T) {
	requireRunc(t)
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	rootfs := busyboxRootfs(t, newDir(t))
	spec := guest(t, rootfs, nil)
	if err := d.Create(ctx, spec); !novacron.IsCode(err, novacron.EInvalid) {
		t.Fatalf("Create without any command = %v, want invalid_request", err)
	}
	spec.ImageCommand = []string{"/bin/sh", "-c", "echo from-the-image; exec sleep 3600"}
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, "from-the-image")
}

// TestAdopt: a new driver (an agent restarted) finds the running container
// and stops it; the container was never restarted.
func TestAdopt(t *testing.T) {
	requireRunc(t)
	ctx := testContext(t)
	dir := newDir(t)
	d1 := newDriver(t, dir)
	rootfs := busyboxRootfs(t, newDir(t))
	spec := guest(t, rootfs, sh(`echo started; trap "exit 0" TERM; while :; do sleep 0.1; done`))
	start(t, ctx, d1, spec)
	waitLogs(t, ctx, d1, spec.ID, "started")
	st1, _ := d1.Status(ctx, spec.ID)

	d2 := newDriver(t, dir)
	st2, err := d2.Status(ctx, spec.ID)
	if err != nil || st2.State != driver.GuestRunning || st2.PID != st1.PID {
		t.Fatalf("adopted Status = %+v, %v; want running as %d", st2, err, st1.PID)
	}
	if b, _ := d2.Logs(ctx, spec.ID, 0); strings.Count(string(b), "started") != 1 {
		t.Fatalf("the container started again: %q", b)
	}
	if err := d2.Stop(ctx, spec.ID, 10*time.Second, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := d2.Status(ctx, spec.ID); st.State != driver.GuestExited || st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("Status = %+v, want exited 0", st)
	}
}
