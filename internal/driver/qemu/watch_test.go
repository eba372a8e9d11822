package qemu_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/qemu"
)

// watcher runs d.Watch until the test ends and collects what it reports.
type watcher struct {
	mu   sync.Mutex
	seen map[string]int
	ch   chan string
}

func watch(t *testing.T, d *qemu.Driver) *watcher {
	t.Helper()
	w := &watcher{seen: map[string]int{}, ch: make(chan string, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Watch(ctx, func(id string) {
			w.mu.Lock()
			w.seen[id]++
			w.mu.Unlock()
			select {
			case w.ch <- id:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Watch does not return after its context ends")
		}
	})
	return w
}

// drain forgets what was reported so far.
func (w *watcher) drain() {
	for {
		select {
		case <-w.ch:
		default:
			return
		}
	}
}

// next waits for a report about id, at most limit.
func (w *watcher) next(t *testing.T, id string, limit time.Duration) {
	t.Helper()
	if !w.wait(id, limit) {
		t.Fatalf("no change of guest %s reported within %s", id, limit)
	}
}

// wait reports whether a report about id came within limit.
func (w *watcher) wait(id string, limit time.Duration) bool {
	timer := time.After(limit)
	for {
		select {
		case got := <-w.ch:
			if got == id {
				return true
			}
		case <-timer:
			return false
		}
	}
}

// TestWatch: pausing, resuming, killing QEMU and a guest's power-off are
// each reported as they happen, from QMP events and the events socket
// closing, with no polling of Status by anyone.
func TestWatch(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	w := watch(t, d)
	spec := kernelSpec(t, "console=ttyS0 quiet")
	start(t, ctx, d, spec)
	w.next(t, spec.ID, 60*time.Second) // watched from its start
	waitLogs(t, ctx, d, spec.ID, bootMarker)

	w.drain()
	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	w.next(t, spec.ID, 60*time.Second)
	w.drain()
	if err := d.Resume(ctx, spec.ID); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	w.next(t, spec.ID, 60*time.Second)

	// The guest powers itself off (its init's power button handler, run
	// through QMP here without the driver's Stop): QEMU says SHUTDOWN.
	w.drain()
	pressPowerButton(t, ctx, d, spec.ID, func(limit time.Duration) bool { return w.wait(spec.ID, limit) })
	if st := status(t, ctx, d, spec.ID); st.State != driver.GuestExited || st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("Status after the power-off = %+v, want exited with code 0", st)
	}

	// A QEMU killed: its events socket closes.
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	w.next(t, spec.ID, 60*time.Second)
	pid := status(t, ctx, d, spec.ID).PID
	w.drain()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	w.next(t, spec.ID, 60*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for pidAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := status(t, ctx, d, spec.ID); st.State != driver.GuestExited || st.Reason != "qemu exited unexpectedly" {
		t.Fatalf("Status after kill -9 = %+v", st)
	}
}

// pressPowerButton presses the guest's ACPI power button over a QMP client
// of its own, as a host's power button would, bypassing the driver, until
// done (given how long to wait) says the guest reacted. The test guest's
// acpid starts in the background and may not listen yet when the boot
// marker shows: a press before that is lost, so it presses again.
func pressPowerButton(t *testing.T, ctx context.Context, d *qemu.Driver, id string, done func(limit time.Duration) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := qemu.ExecuteQMP(ctx, d, id, "system_powerdown")
		if done(5 * time.Second) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest did not power off after two minutes of presses (last: %v)", err)
		}
	}
}

// TestWatchAdopts: a Watch of a new driver (an agent restarted) follows the
// guests the old one started.
func TestWatchAdopts(t *testing.T) {
	ctx := testContext(t)
	dir := newDir(t)
	d1 := newDriver(t, dir)
	spec := kernelSpec(t, "console=ttyS0 quiet")
	start(t, ctx, d1, spec)
	waitLogs(t, ctx, d1, spec.ID, bootMarker)

	d2 := newDriver(t, dir)
	w := watch(t, d2)
	w.next(t, spec.ID, 60*time.Second)
	w.drain()
	pid := status(t, ctx, d2, spec.ID).PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	w.next(t, spec.ID, 60*time.Second)
}

// TestRestart: a restart resets the guest in place: the same QEMU boots
// the guest again, from running and from paused.
func TestRestart(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	spec := kernelSpec(t, "console=ttyS0 quiet")
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	pid := status(t, ctx, d, spec.ID).PID
	for i, pause := range []bool{false, true} {
		if pause {
			if err := d.Pause(ctx, spec.ID); err != nil {
				t.Fatalf("Pause: %v", err)
			}
		}
		if err := d.Restart(ctx, spec.ID); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		if st := status(t, ctx, d, spec.ID); st.State != driver.GuestRunning || st.PID != pid {
			t.Fatalf("Status after Restart = %+v, want running in the same QEMU %d", st, pid)
		}
		deadline := time.Now().Add(bootTimeout)
		for {
			b, err := d.Logs(ctx, spec.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Count(b, []byte(bootMarker)) == i+2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the guest did not boot again after restart %d: %q", i+1, tail(b))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := d.Restart(ctx, spec.ID); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Fatalf("Restart of a stopped guest = %v, want invalid_state", err)
	}
}

// TestPanic: a guest whose kernel panics (reported through pvpanic) has
// exited with the reason, not with code 0.
func TestPanic(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	w := watch(t, d)
	spec := kernelSpec(t, "console=ttyS0 quiet novacron.panic=1")
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	deadline := time.Now().Add(bootTimeout)
	for {
		w.next(t, spec.ID, time.Until(deadline))
		if st := status(t, ctx, d, spec.ID); st.State == driver.GuestExited {
			if st.Reason != "the guest panicked" || st.ExitCode != nil {
				t.Fatalf("Status = %+v, want exited because the guest panicked, with no exit code", st)
			}
			break
		}
	}
	if b, _ := d.Logs(ctx, spec.ID, 0); !bytes.Contains(b, []byte("Kernel panic")) {
		t.Errorf("the console does not show the panic: %q", tail(b))
	}
}

// TestConsole: the console is interactive (a shell answers a command typed
// into it), one connection at a time, and free again once closed.
func TestConsole(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	spec := kernelSpec(t, "console=ttyS0 quiet novacron.shell=1")
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)

	c, err := d.Console(ctx, spec.ID)
	if err != nil {
		t.Fatalf("Console: %v", err)
	}
	if _, err := d.Console(ctx, spec.ID); !novacron.IsCode(err, novacron.EConflict) {
		t.Fatalf("a second Console = %v, want conflict", err)
	}
	out := make(chan []byte, 1)
	go func() {
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(got, []byte("answer=42")) {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		out <- got
	}()
	if _, err := io.WriteString(c, "echo answer=$((6*7))\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		if !bytes.Contains(got, []byte("answer=42")) {
			t.Fatalf("the console answered %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer from the guest's shell")
	}
	c.Close()
	// Typed input and its output are in the console log too.
	waitLogs(t, ctx, d, spec.ID, "answer=42")
	c2, err := d.Console(ctx, spec.ID)
	if err != nil {
		t.Fatalf("Console after the first closed: %v", err)
	}
	c2.Close()

	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Console(ctx, spec.ID); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Fatalf("Console of a stopped guest = %v, want invalid_state", err)
	}
}

// TestConsoleLogCap: Watch keeps the console log under its cap while the
// guest writes on; the newest output is still read.
func TestConsoleLogCap(t *testing.T) {
	ctx := testContext(t)
	dir := newDir(t)
	const max = 4096
	d, err := qemu.New(qemu.Config{Dir: dir, Accel: qemu.AccelTCG, ConsoleLogMax: max, WatchInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	watch(t, d)
	spec := kernelSpec(t, "console=ttyS0") // not quiet: the kernel's boot messages are well over 4 KiB
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	// The ticks go on past several caps: about 8 bytes each, 10 a second.
	time.Sleep(3 * time.Second)
	for _, f := range []string{"console.log", "console.log.1"} {
		fi, err := os.Stat(filepath.Join(dir, spec.ID, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// The cap is checked every 100 ms: allow what a second of ticks adds.
		if fi.Size() > max+1024 {
			t.Errorf("%s is %d bytes, over the cap of %d", f, fi.Size(), max)
		}
	}
	b, err := d.Logs(ctx, spec.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("Linux version")) {
		t.Errorf("the log still holds the kernel's first line after being capped")
	}
	last := lastTick(b)
	time.Sleep(time.Second)
	b, _ = d.Logs(ctx, spec.ID, 1)
	if lastTick(b) <= last {
		t.Errorf("the newest tick is %q, want past %d", b, last)
	}
}

// lastTick returns the number of the last "tick N" line, -1 for none.
func lastTick(b []byte) int {
	n := -1
	for line := range strings.Lines(string(b)) {
		var i int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "tick %d", &i); err == nil {
			n = i
		}
	}
	return n
}

// TestStats: the stats of a running guest are QEMU's own CPU time and
// memory, and its disk's I/O grows as the guest reads it.
func TestStats(t *testing.T) {
	ctx := testContext(t)
	d := newDriver(t, newDir(t))
	spec := kernelSpec(t, "console=ttyS0 quiet")
	spec.DiskGB = 1
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	st, err := d.Stats(ctx, spec.ID)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	pid := status(t, ctx, d, spec.ID).PID
	rss := rssOf(t, pid)
	if st.MemoryBytes <= 0 || st.MemoryBytes > 2*rss || st.MemoryBytes < rss/2 {
		t.Errorf("MemoryBytes = %d, QEMU's VmRSS is %d", st.MemoryBytes, rss)
	}
	if st.CPUSeconds <= 0 {
		t.Errorf("CPUSeconds = %v after a boot", st.CPUSeconds)
	}
	if st.DiskReadBytes == nil || st.DiskReadOps == nil || st.DiskWriteBytes == nil {
		t.Fatalf("disk counters missing: %+v", st)
	}
	if st.NetworkRxBytes != nil {
		t.Errorf("network counters from user-mode networking: %+v", st)
	}
	time.Sleep(time.Second)
	st2, err := d.Stats(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st2.CPUSeconds <= st.CPUSeconds {
		t.Errorf("CPU time does not grow: %v then %v", st.CPUSeconds, st2.CPUSeconds)
	}
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stats(ctx, spec.ID); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Fatalf("Stats of a stopped guest = %v, want invalid_state", err)
	}
}

// rssOf reads a process's VmRSS in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestAccelAuto: the auto accelerator boots the guest wherever it runs:
// KVM only when QEMU can really use it (a /dev/kvm that opens is not
// enough under nested virtualisation), else TCG.
func TestAccelAuto(t *testing.T) {
	ctx := testContext(t)
	d, err := qemu.New(qemu.Config{Dir: newDir(t), Accel: qemu.AccelAuto})
	if err != nil {
		t.Fatal(err)
	}
	spec := kernelSpec(t, "console=ttyS0 quiet")
	start(t, ctx, d, spec)
	waitLogs(t, ctx, d, spec.ID, bootMarker)
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(status(t, ctx, d, spec.ID).PID) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("auto chose %s", map[bool]string{true: "kvm", false: "tcg"}[bytes.Contains(cmdline, []byte("accel=kvm"))])
}
