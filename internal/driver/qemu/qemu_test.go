package qemu_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/drivertest"
	"github.com/novacron/novacron/internal/driver/qemu"
	"github.com/novacron/novacron/internal/testenv"
)

// The test guest (scripts/qemu-test-guest.sh) prints bootMarker once it
// listens for the power button, then "tick N" every 100 ms.
const bootMarker = "NOVACRON-BOOT-OK"

// bootTimeout bounds a TCG boot of the test guest (about 2 to 7 s here).
const bootTimeout = 60 * time.Second

var (
	guestOnce sync.Once
	guestDir  string
	guestErr  string
)

// testGuest returns the kernel and initramfs of the test guest, or skips
// (fails under NOVACRON_TEST_REQUIRE) when QEMU, root or the fixture is
// missing.
func testGuest(t *testing.T) (kernel, initrd string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Missing(t, "qemu", "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86 qemu-utils)")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Missing(t, "qemu", "qemu-img is not installed (apt-get install qemu-utils)")
	}
	if os.Getuid() != 0 {
		testenv.Missing(t, "qemu", "the qemu driver's tests run as root (QEMU -runas)")
	}
	guestOnce.Do(func() {
		guestDir = os.Getenv("NOVACRON_TEST_GUEST_DIR")
		if guestDir != "" {
			return
		}
		out, err := exec.Command("../../../scripts/qemu-test-guest.sh", "/var/cache/novacron-test-guest").CombinedOutput()
		if err != nil {
			guestErr = "NOVACRON_TEST_GUEST_DIR is not set and scripts/qemu-test-guest.sh failed: " + err.Error() + ": " + string(out)
			return
		}
		guestDir = "/var/cache/novacron-test-guest"
	})
	if guestDir == "" {
		testenv.Missing(t, "qemu", guestErr)
	}
	kernel, initrd = filepath.Join(guestDir, "vmlinuz"), filepath.Join(guestDir, "initramfs.gz")
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(t, "qemu", "the test guest is incomplete: "+err.Error()+" (scripts/qemu-test-guest.sh DIR builds it)")
		}
	}
	return kernel, initrd
}

// newDir returns a short driver directory (unix socket paths are short),
// removed when the test ends.
func newDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newDriver(t *testing.T, dir string) *qemu.Driver {
	t.Helper()
	d, err := qemu.New(qemu.Config{Dir: dir, Accel: qemu.AccelTCG})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var nextUID atomic.Int32

func init() { nextUID.Store(201000) }

// kernelSpec is a spec of a guest booting the test guest with cmdline.
func kernelSpec(t *testing.T, cmdline string) driver.Spec {
	kernel, initrd := testGuest(t)
	uid := int(nextUID.Add(1))
	cfg, _ := json.Marshal(map[string]string{"cmdline": cmdline})
	id := uuid.NewString()
	return driver.Spec{ID: id, Name: "t-" + id[:8], CPUs: 1, MemoryMB: 256, UID: uid, GID: uid,
		Config: cfg, Kernel: kernel, Initrd: initrd}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// start creates and starts spec, and force-stops and deletes it when the
// test ends.
func start(t *testing.T, ctx context.Context, d *qemu.Driver, spec driver.Spec) {
	t.Helper()
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Stop(ctx, spec.ID, 0, true); err != nil && !novacron.IsCode(err, novacron.ENotFound) {
			t.Errorf("cleanup: Stop: %v", err)
		}
		if err := d.Delete(ctx, spec.ID); err != nil {
			t.Errorf("cleanup: Delete: %v", err)
		}
	})
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

// waitLogs polls the guest's console until it holds want.
func waitLogs(t *testing.T, ctx context.Context, d *qemu.Driver, id, want string) []byte {
	t.Helper()
	deadline := time.Now().Add(bootTimeout)
	for {
		b, err := d.Logs(ctx, id, 0)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if bytes.Contains(b, []byte(want)) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("console %q does not show %q after %s", tail(b), want, bootTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

func status(t *testing.T, ctx context.Context, d *qemu.Driver, id string) driver.Status {
	t.Helper()
	st, err := d.Status(ctx, id)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// ticks counts the guest's "tick" lines.
func ticks(t *testing.T, ctx context.Context, d *qemu.Driver, id string) int {
	t.Helper()
	b, err := d.Logs(ctx, id, 0)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "tick ") {
			n++
		}
	}
	return n
}

func TestConformance(t *testing.T) {
	kernel, initrd := testGuest(t)
	uid := int(nextUID.Add(1))
	cfg := func(cmdline string) json.RawMessage {
		b, _ := json.Marshal(map[string]string{"accel": "tcg", "cmdline": cmdline})
		return b
	}
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newDriver(t, newDir(t)) }, drivertest.Config{
		Run:            cfg("console=ttyS0 quiet"),
		RunReadyLine:   bootMarker,
		IgnoreStop:     cfg("console=ttyS0 quiet novacron.acpi=off"),
		ReadyLine:      bootMarker,
		Output:         cfg("console=ttyS0 quiet loglevel=0 novacron.lines=alpha,beta,gamma"),
		OutputLines:    []string{"alpha", "beta", "gamma"},
		UID:            uid,
		GID:            uid,
		KilledExitCode: qemu.ForcedExitCode,
		KilledReason:   qemu.ForcedReason,
		OutputTimeout:  bootTimeout,
		Prepare: func(spec *driver.Spec) {
			spec.Kernel, spec.Initrd = kernel, initrd
		},
	})
}

// TestBoot boots the test guest, checks that QEMU runs as the guest's uid,
// pauses it (its ticks stop), resumes it (they go on) and stops it
// gracefully: it powers off at once and exits with code 0.
func TestBoot(t *testing.T) {
	ctx := testContext(t)
	dir := newDir(t)
	d := newDriver(t, dir)
	spec := kernelSpec(t, "console=ttyS0")
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	st := status(t, ctx, d, spec.ID)
	if st.State != driver.GuestRunning || st.PID <= 0 {
		t.Fatalf("Status = %+v, want running with a pid", st)
	}

	// QEMU runs as the guest's own uid and gid.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(spec.UID)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			for _, id := range f[1:] {
				if id != want {
					t.Errorf("QEMU's %s, want %s everywhere", line, want)
				}
			}
		}
	}
	// No other group, no capability, seccomp on.
	for _, want := range []string{"Groups:\t" + strconv.Itoa(spec.GID) + " \n", "CapEff:\t0000000000000000\n", "Seccomp:\t2\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("QEMU's /proc/PID/status lacks %q:\n%s", want, b)
		}
	}
	// Its QMP socket is the agent's alone.
	if fi, err := os.Stat(filepath.Join(dir, spec.ID, "qmp.sock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("qmp.sock: %v, %v; want mode 0600", fi, err)
	}

	// Pause: the ticks stop.
	time.Sleep(300 * time.Millisecond)
	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if st := status(t, ctx, d, spec.ID); st.State != driver.GuestPaused {
		t.Fatalf("Status after Pause = %+v", st)
	}
	time.Sleep(100 * time.Millisecond) // a line in the console's flight
	n0 := ticks(t, ctx, d, spec.ID)
	time.Sleep(500 * time.Millisecond)
	if n1 := ticks(t, ctx, d, spec.ID); n1 != n0 {
		t.Fatalf("paused guest ticked %d times in 500 ms", n1-n0)
	}
	if err := d.Resume(ctx, spec.ID); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	time.Sleep(600 * time.Millisecond)
	if n2 := ticks(t, ctx, d, spec.ID); n2 <= n0 {
		t.Fatalf("resumed guest did not tick in 600 ms (%d ticks)", n2)
	}

	// A graceful stop: the guest powers off well before the timeout.
	t0 := time.Now()
	if err := d.Stop(ctx, spec.ID, 30*time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if el := time.Since(t0); el > 10*time.Second {
		t.Errorf("graceful Stop took %s", el)
	}
	st = status(t, ctx, d, spec.ID)
	if st.State != driver.GuestExited || st.ExitCode == nil || *st.ExitCode != 0 || st.Reason != "powered off" {
		t.Fatalf("Status after Stop = %+v, want exited with code 0, powered off", st)
	}
	if pidAlive(st.PID) || pidAlive(mustPid(t, dir, spec.ID)) {
		t.Errorf("QEMU still runs after Stop")
	}
}

// TestGuestPowersOff: a guest that powers off by itself (here: the power
// button pressed behind the driver's back, over a second QMP client) reads
// as exited with code 0, and its QEMU is gone.
func TestGuestPowersOff(t *testing.T) {
	ctx := testContext(t)
	dir := newDir(t)
	d := newDriver(t, dir)
	spec := kernelSpec(t, "console=ttyS0 quiet")
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	pid := status(t, ctx, d, spec.ID).PID
	pressPowerButton(t, ctx, d, spec.ID, func(limit time.Duration) bool {
		for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if status(t, ctx, d, spec.ID).State == driver.GuestExited {
				return true
			}
		}
		return false
	})
	if st := status(t, ctx, d, spec.ID); st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("Status = %+v, want exit code 0", st)
	}
	if pidAlive(pid) {
		t.Errorf("QEMU %d still runs", pid)
	}
}

// TestForceStop quits a guest that ignores the power button at once.
func TestForceStop(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	spec := kernelSpec(t, "console=ttyS0 quiet novacron.acpi=off")
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	t0 := time.Now()
	if err := d.Stop(ctx, spec.ID, time.Hour, true); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("forced Stop took %s", el)
	}
	st := status(t, ctx, d, spec.ID)
	if st.State != driver.GuestExited || st.ExitCode == nil || *st.ExitCode == 0 {
		t.Fatalf("Status = %+v, want exited with a non-zero code", st)
	}
}

// TestKilled: a QEMU killed behind the driver's back exited unexpectedly,
// with no exit code.
func TestKilled(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	spec := kernelSpec(t, "console=ttyS0 quiet")
	start(t, ctx, d, spec)
	pid := status(t, ctx, d, spec.ID).PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pidAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := status(t, ctx, d, spec.ID)
	if st.State != driver.GuestExited || st.Reason != "qemu exited unexpectedly" || (st.ExitCode != nil && *st.ExitCode == 0) {
		t.Fatalf("Status = %+v, want exited unexpectedly, not with code 0", st)
	}
	if again := status(t, ctx, d, spec.ID); !again.ExitedAt.Equal(st.ExitedAt) {
		t.Errorf("the exit time moves: %v then %v", st.ExitedAt, again.ExitedAt)
	}
	// It starts again.
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start after the kill: %v", err)
	}
	if st := status(t, ctx, d, spec.ID); st.State != driver.GuestRunning || st.PID == pid {
		t.Fatalf("Status after a new Start = %+v", st)
	}
}

// TestAdopt: a new driver (an agent restarted) finds the running QEMU of
// the one before, and stops it.
func TestAdopt(t *testing.T) {
	ctx := testContext(t)
	dir := newDir(t)
	d1 := newDriver(t, dir)
	spec := kernelSpec(t, "console=ttyS0 quiet")
	start(t, ctx, d1, spec)
	waitLogs(t, ctx, d1, spec.ID, bootMarker)
	st1 := status(t, ctx, d1, spec.ID)

	d2 := newDriver(t, dir)
	ids, err := d2.List(ctx)
	if err != nil || len(ids) != 1 || ids[0] != spec.ID {
		t.Fatalf("List = %v, %v", ids, err)
	}
	st2 := status(t, ctx, d2, spec.ID)
	if st2.State != driver.GuestRunning || st2.PID != st1.PID || !st2.StartedAt.Equal(st1.StartedAt) {
		t.Fatalf("adopted Status = %+v, want %+v", st2, st1)
	}
	if b, err := d2.Logs(ctx, spec.ID, 1); err != nil || !bytes.HasPrefix(b, []byte("tick ")) {
		t.Fatalf("adopted Logs(1) = %q, %v", b, err)
	}
	// An agent that died before it recorded the run: the pid file names
	// QEMU.
	if err := os.Remove(filepath.Join(dir, spec.ID, "run.json")); err != nil {
		t.Fatal(err)
	}
	if st := status(t, ctx, newDriver(t, dir), spec.ID); st.State != driver.GuestRunning || st.PID != st1.PID {
		t.Fatalf("Status without run.json = %+v, want running as pid %d", st, st1.PID)
	}
	if err := d2.Stop(ctx, spec.ID, 30*time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := status(t, ctx, d2, spec.ID); st.State != driver.GuestExited || st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("Status = %+v, want exited with code 0", st)
	}
	if pidAlive(st1.PID) {
		t.Errorf("QEMU %d still runs", st1.PID)
	}
}

// TestDelete: Delete of a stopped guest leaves no file and no process.
func TestDelete(t *testing.T) {
	ctx := testContext(t)
	dir := newDir(t)
	d := newDriver(t, dir)
	spec := kernelSpec(t, "console=ttyS0 quiet")
	spec.DiskGB = 1
	start(t, ctx, d, spec)
	pid := status(t, ctx, d, spec.ID).PID
	if _, err := os.Stat(filepath.Join(dir, spec.ID, "disk.qcow2")); err != nil {
		t.Fatalf("no disk: %v", err)
	}
	if err := d.Delete(ctx, spec.ID); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Fatalf("Delete of a running guest: %v, want invalid_state", err)
	}
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if pidAlive(pid) {
		t.Errorf("QEMU %d still runs", pid)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("the driver's directory holds %v, %v", entries, err)
	}
}

// TestDisks makes a blank disk, an overlay on a base image and a copy of it.
func TestDisks(t *testing.T) {
	testGuest(t)
	ctx := testContext(t)
	base := filepath.Join(newDir(t), "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "1G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	info := func(path string) map[string]any {
		t.Helper()
		out, err := exec.Command("qemu-img", "info", "--output=json", "-f", "qcow2", path).Output()
		if err != nil {
			t.Fatalf("qemu-img info: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, c := range []struct {
		name        string
		copy        bool
		base        string
		diskGB      int
		wantSize    float64
		wantBacking string
	}{
		{"blank", false, "", 2, 2 << 30, ""},
		{"overlay", false, base, 0, 1 << 30, base},
		{"overlay grown", false, base, 3, 3 << 30, base},
		{"copy", true, base, 2, 2 << 30, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := newDir(t)
			d, err := qemu.New(qemu.Config{Dir: dir, Accel: qemu.AccelTCG, CopyBaseImage: c.copy})
			if err != nil {
				t.Fatal(err)
			}
			uid := int(nextUID.Add(1))
			spec := driver.Spec{ID: uuid.NewString(), CPUs: 1, MemoryMB: 128, DiskGB: c.diskGB, UID: uid, GID: uid}
			if c.base != "" {
				spec.BaseImage, spec.BaseImageFormat = c.base, "qcow2"
			}
			if err := d.Create(ctx, spec); err != nil {
				t.Fatalf("Create: %v", err)
			}
			m := info(filepath.Join(dir, spec.ID, "disk.qcow2"))
			if m["virtual-size"] != c.wantSize {
				t.Errorf("virtual size %v, want %v", m["virtual-size"], c.wantSize)
			}
			if got, _ := m["backing-filename"].(string); got != c.wantBacking {
				t.Errorf("backing file %q, want %q", got, c.wantBacking)
			}
			if c.wantBacking != "" && m["backing-filename-format"] != "qcow2" {
				t.Errorf("backing format %v, want qcow2", m["backing-filename-format"])
			}
			if err := d.Delete(ctx, spec.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Nothing to boot is refused.
	d := newDriver(t, newDir(t))
	err := d.Create(ctx, driver.Spec{ID: uuid.NewString(), UID: 201999, GID: 201999})
	if !novacron.IsCode(err, novacron.EInvalid) {
		t.Fatalf("Create with nothing to boot: %v, want invalid_request", err)
	}
}

// TestCloudInitSeed: a guest with a cloud_init config gets a NoCloud seed
// holding its user data, attached as a CD-ROM that QEMU accepts.
func TestCloudInitSeed(t *testing.T) {
	ctx := testContext(t)
	dir := newDir(t)
	d := newDriver(t, dir)
	spec := kernelSpec(t, "console=ttyS0 quiet")
	spec.Config = json.RawMessage(`{"cmdline": "console=ttyS0 quiet", "cloud_init": {"user_data": "#cloud-config\nruncmd: [echo hi]\n", "hostname": "web1", "ssh_authorized_keys": ["ssh-ed25519 AAAAC3 me@host"]}}`)
	start(t, ctx, d, spec)
	iso, err := os.ReadFile(filepath.Join(dir, spec.ID, "seed.iso"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(iso, []byte("runcmd: [echo hi]")) || !bytes.Contains(iso, []byte("CIDATA")) && !bytes.Contains(iso, []byte("cidata")) {
		t.Fatal("seed.iso lacks the user data or the cidata label")
	}
	if path, err := exec.LookPath("isoinfo"); err == nil {
		out, err := exec.Command(path, "-i", filepath.Join(dir, spec.ID, "seed.iso"), "-x", "/user-data;1").Output()
		if err != nil || !strings.Contains(string(out), "runcmd: [echo hi]") {
			t.Errorf("isoinfo user-data = %q, %v", out, err)
		}
	}
	if st := status(t, ctx, d, spec.ID); st.State != driver.GuestRunning {
		t.Fatalf("Status = %+v", st)
	}
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

func mustPid(t *testing.T, dir, id string) int {
	b, err := os.ReadFile(filepath.Join(dir, id, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var run struct{ PID int }
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatal(err)
	}
	return run.PID
}

// freePort returns a port in the driver's default range that is free on
// 127.0.0.1 now, with a listener holding it when hold is set.
func freePort(t *testing.T, hold bool) (int, net.Listener) {
	t.Helper()
	for p := 20000 + rand.IntN(9000); p < 29999; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		if hold {
			t.Cleanup(func() { l.Close() })
			return p, l
		}
		l.Close()
		return p, nil
	}
	t.Fatal("no free port in 20000-29999")
	return 0, nil
}

// TestPortForwards: a forwarded port listens on 127.0.0.1 while the guest
// runs; a port the host already uses fails the start, which leaves the
// guest as it was.
func TestPortForwards(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	port, _ := freePort(t, false)
	spec := kernelSpec(t, "console=ttyS0 quiet")
	spec.Config = json.RawMessage(fmt.Sprintf(`{"cmdline": "console=ttyS0 quiet", "port_forwards": [{"host_port": %d, "guest_port": 22, "proto": "tcp"}]}`, port))
	start(t, ctx, d, spec)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		t.Fatalf("the forwarded port does not listen: %v", err)
	}
	c.Close()
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}

	busy, _ := freePort(t, true)
	spec2 := kernelSpec(t, "console=ttyS0 quiet")
	spec2.Config = json.RawMessage(fmt.Sprintf(`{"cmdline": "console=ttyS0 quiet", "port_forwards": [{"host_port": %d, "guest_port": 22}]}`, busy))
	if err := d.Create(ctx, spec2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Delete(context.Background(), spec2.ID) })
	err = d.Start(ctx, spec2)
	if !novacron.IsCode(err, novacron.EOperationFailed) {
		t.Fatalf("Start with a busy port: %v, want operation_failed", err)
	}
	if st := status(t, ctx, d, spec2.ID); st.State != driver.GuestCreated {
		t.Fatalf("Status after a failed start = %+v, want created", st)
	}
}
