package process_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/drivertest"
	"github.com/novacron/novacron/internal/driver/process"
	"github.com/novacron/novacron/internal/testenv"
)

// cgroupParent keeps test guests apart from a real agent's.
const cgroupParent = "novacron-test"

// nextUID gives each test guest its own uid, as the agent does.
var nextUID atomic.Int64

func init() { nextUID.Store(231000) }

func newUID() int { return int(nextUID.Add(1)) }

// needRoot skips (or fails, under NOVACRON_TEST_REQUIRE) tests that start
// real guests.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "the process driver's tests start guests under other uids in their own cgroups")
	}
	if cgroups.Mode() == cgroups.Unavailable {
		testenv.Missing(t, "root", "no cgroup file system at /sys/fs/cgroup")
	}
}

func shimCommand(t *testing.T) []string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "shim"}
}

func testConfig(t *testing.T, dir string) process.Config {
	return process.Config{Dir: dir, ShimCommand: shimCommand(t), CgroupParent: cgroupParent}
}

func newDriver(t *testing.T, cfg process.Config) *process.Driver {
	t.Helper()
	d, err := process.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	needRoot(t)
	uid := newUID()
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		return newDriver(t, testConfig(t, t.TempDir()))
	}, drivertest.Config{
		Run:   json.RawMessage(`{"command": ["/bin/sleep", "3600"]}`),
		Exit3: json.RawMessage(`{"command": ["/bin/sh", "-c", "sleep 0.1; exit 3"]}`),
		IgnoreStop: json.RawMessage(`{"command": ["/bin/sh", "-c",
			"trap '' TERM; echo ready; while :; do sleep 0.05; done"]}`),
		ReadyLine: "ready",
		Output: json.RawMessage(`{"command": ["/bin/sh", "-c",
			"echo line 1; echo line 2 >&2; echo line 3; exec sleep 3600"]}`),
		OutputLines: []string{"line 1", "line 2", "line 3"},
		UID:         uid, GID: uid,
		CPUs: 1, MemoryMB: 128,
	})
}

// guest creates and starts a guest and stops and deletes it when the test
// ends.
func guest(t *testing.T, d *process.Driver, spec driver.Spec) driver.Spec {
	t.Helper()
	ctx := context.Background()
	if spec.ID == "" {
		spec.ID = uuid.NewString()
	}
	if spec.UID == 0 {
		spec.UID = newUID()
		spec.GID = spec.UID
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		_ = d.Stop(ctx, spec.ID, 0, true)
		if err := d.Delete(ctx, spec.ID); err != nil {
			t.Errorf("cleanup: Delete: %v", err)
		}
	})
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return spec
}

func running(t *testing.T, d driver.Driver, id string) driver.Status {
	t.Helper()
	st, err := d.Status(context.Background(), id)
	if err != nil || st.State != driver.GuestRunning || st.PID <= 0 {
		t.Fatalf("Status = %+v, %v; want running with a pid", st, err)
	}
	return st
}

func waitExited(t *testing.T, d driver.Driver, id string) driver.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := d.Status(context.Background(), id)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.State == driver.GuestExited {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("guest still %s", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStatus reads the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		m[k] = strings.TrimSpace(v)
	}
	return m
}

// alive reports whether pid exists and is not a zombie: an orphan's zombie
// lingers until PID 1 reaps it.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cgroupFile is a file of the guest's cgroup: v1 controller files live in
// their controller's hierarchy, v2 ones in the unified one.
func cgroupFile(id, controller, file string) string {
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join("/sys/fs/cgroup", cgroupParent, id, file)
	}
	return filepath.Join("/sys/fs/cgroup", controller, cgroupParent, id, file)
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func shimPID(t *testing.T, dir, id string) int {
	t.Helper()
	pid, err := strconv.Atoi(readTrim(t, filepath.Join(dir, id, "shim.pid")))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestGuestConfinement checks what a guest runs as and in: its own uid and
// gid without groups, no new privileges, its own session, exactly its
// environment, its working directory, and its cgroup with the limits of its
// spec, while the shim stays outside that cgroup.
func TestGuestConfinement(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	d := newDriver(t, testConfig(t, dir))
	spec := guest(t, d, driver.Spec{CPUs: 2, MemoryMB: 96, Config: json.RawMessage(
		`{"command": ["/bin/sleep", "3600"], "env": {"GREETING": "hi"}, "cwd": "sub/dir"}`)})
	pid := running(t, d, spec.ID).PID

	st := procStatus(t, pid)
	uid := strconv.Itoa(spec.UID)
	if want := uid + "\t" + uid + "\t" + uid + "\t" + uid; st["Uid"] != want {
		t.Errorf("Uid: %q, want %q", st["Uid"], want)
	}
	if want := uid + "\t" + uid + "\t" + uid + "\t" + uid; st["Gid"] != want {
		t.Errorf("Gid: %q, want %q", st["Gid"], want)
	}
	if st["Groups"] != "" {
		t.Errorf("Groups: %q, want none", st["Groups"])
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs: %q", st["NoNewPrivs"])
	}
	if st["CapEff"] != "0000000000000000" {
		t.Errorf("CapEff: %q", st["CapEff"])
	}

	// Only its standard streams: no descriptor of the shim leaks in.
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) != 3 {
		var names []string
		for _, fd := range fds {
			target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			names = append(names, fd.Name()+"->"+target)
		}
		t.Errorf("guest descriptors %v, want 0, 1, 2", names)
	}

	// Its own session and process group.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	if f[2] != strconv.Itoa(pid) || f[3] != strconv.Itoa(pid) {
		t.Errorf("process group %s, session %s; want both %d", f[2], f[3], pid)
	}

	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, spec.ID, "work")
	wantEnv := "GREETING=hi\x00HOME=" + work + "\x00PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\x00"
	if string(env) != wantEnv {
		t.Errorf("environment %q, want %q", env, wantEnv)
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != filepath.Join(work, "sub/dir") {
		t.Errorf("cwd %q, %v", cwd, err)
	}
	if fi, err := os.Stat(work); err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != uint32(spec.UID) {
		t.Errorf("work directory: %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(work, "sub/dir")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(spec.UID) {
		t.Errorf("cwd not created by the guest: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, spec.ID, "shim.sock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("shim.sock: %v, %v", fi.Mode(), err)
	}

	// The cgroup and its limits.
	procs := readTrim(t, cgroupFile(spec.ID, "memory", "cgroup.procs"))
	if !contains(strings.Fields(procs), strconv.Itoa(pid)) {
		t.Errorf("guest %d not in its cgroup's procs %q", pid, procs)
	}
	if cgroups.Mode() == cgroups.Unified {
		if v := readTrim(t, cgroupFile(spec.ID, "", "memory.max")); v != strconv.Itoa(96<<20) {
			t.Errorf("memory.max = %s", v)
		}
		if v := readTrim(t, cgroupFile(spec.ID, "", "cpu.max")); v != "200000 100000" {
			t.Errorf("cpu.max = %s", v)
		}
	} else {
		for _, c := range []string{"cpu", "memory", "pids", "freezer"} {
			p := readTrim(t, cgroupFile(spec.ID, c, "cgroup.procs"))
			if !contains(strings.Fields(p), strconv.Itoa(pid)) {
				t.Errorf("guest not in its %s cgroup", c)
			}
		}
		if v := readTrim(t, cgroupFile(spec.ID, "memory", "memory.limit_in_bytes")); v != strconv.Itoa(96<<20) {
			t.Errorf("memory.limit_in_bytes = %s, want 96 MiB", v)
		}
		if _, err := os.Stat(cgroupFile(spec.ID, "memory", "memory.memsw.limit_in_bytes")); err == nil {
			if v := readTrim(t, cgroupFile(spec.ID, "memory", "memory.memsw.limit_in_bytes")); v != strconv.Itoa(96<<20) {
				t.Errorf("memory.memsw.limit_in_bytes = %s, want 96 MiB (no swap)", v)
			}
		}
		if v := readTrim(t, cgroupFile(spec.ID, "cpu", "cpu.cfs_quota_us")); v != "200000" {
			t.Errorf("cpu.cfs_quota_us = %s", v)
		}
		if v := readTrim(t, cgroupFile(spec.ID, "cpu", "cpu.cfs_period_us")); v != "100000" {
			t.Errorf("cpu.cfs_period_us = %s", v)
		}
	}
	if v := readTrim(t, cgroupFile(spec.ID, "pids", "pids.max")); v != "4096" {
		t.Errorf("pids.max = %s", v)
	}
	shimCgroups, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", shimPID(t, dir, spec.ID)))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(shimCgroups, []byte(spec.ID)) {
		t.Errorf("the shim is in the guest's cgroup:\n%s", shimCgroups)
	}
}

// TestPauseFreezes checks the freezer: a paused guest is frozen and makes
// no progress, its shim still answers, and it runs on once resumed.
func TestPauseFreezes(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	d := newDriver(t, testConfig(t, dir))
	spec := guest(t, d, driver.Spec{Config: json.RawMessage(
		`{"command": ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done"]}`)})
	ctx := context.Background()
	time.Sleep(100 * time.Millisecond)
	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx, spec.ID); err != nil || st.State != driver.GuestPaused {
		t.Fatalf("Status = %+v, %v; want paused", st, err)
	}
	if cgroups.Mode() == cgroups.Unified {
		if v := readTrim(t, cgroupFile(spec.ID, "", "cgroup.freeze")); v != "1" {
			t.Errorf("cgroup.freeze = %s", v)
		}
	} else if v := readTrim(t, cgroupFile(spec.ID, "freezer", "freezer.state")); v != "FROZEN" {
		t.Errorf("freezer.state = %s", v)
	}
	// Let the shim copy what the guest wrote before it froze.
	time.Sleep(50 * time.Millisecond)
	before, _ := d.Logs(ctx, spec.ID, 0)
	time.Sleep(200 * time.Millisecond)
	after, _ := d.Logs(ctx, spec.ID, 0)
	if !bytes.Equal(before, after) {
		t.Errorf("a paused guest still writes: %d then %d bytes", len(before), len(after))
	}
	if err := d.Resume(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	running(t, d, spec.ID)
	time.Sleep(200 * time.Millisecond)
	if again, _ := d.Logs(ctx, spec.ID, 0); len(again) <= len(after) {
		t.Errorf("a resumed guest does not run on")
	}
}

// TestAdoption: the guest outlives the driver that started it, and a new
// driver (the agent restarted) finds it running with the same pid and stops
// it.
func TestAdoption(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	d1 := newDriver(t, cfg)
	spec := guest(t, d1, driver.Spec{Config: json.RawMessage(`{"command": ["/bin/sleep", "3600"]}`)})
	pid := running(t, d1, spec.ID).PID
	shim := shimPID(t, dir, spec.ID)
	// The shim leads its own session: the agent's signals and end do
	// not reach it.
	if sid, err := unixGetsid(shim); err != nil || sid != shim {
		t.Errorf("shim session %d, %v; want its own", sid, err)
	}
	d1 = nil

	d2 := newDriver(t, cfg)
	if st := running(t, d2, spec.ID); st.PID != pid {
		t.Fatalf("adopted guest has pid %d, want %d", st.PID, pid)
	}
	ids, err := d2.List(context.Background())
	if err != nil || !contains(ids, spec.ID) {
		t.Fatalf("List = %v, %v", ids, err)
	}
	if err := d2.Stop(context.Background(), spec.ID, 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	st := waitExited(t, d2, spec.ID)
	if *st.ExitCode != 143 || st.Reason != "killed by signal 15" {
		t.Errorf("Status = %+v, want killed by SIGTERM", st)
	}
	waitGone(t, pid)
	waitGone(t, shim)
}

// TestAgentKilled: the agent process that started a guest is killed with
// SIGKILL, its whole process group with it; the guest runs on under its
// shim (now an orphan), and the next agent adopts and stops it.
func TestAgentKilled(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	id, uid := uuid.NewString(), newUID()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(exe, "agent", dir, id, strconv.Itoa(uid), `{"command": ["/bin/sleep", "3600"]}`)
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	agent.Stderr = os.Stderr
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		t.Fatalf("agent: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	shim := shimPID(t, dir, id)
	if err := syscall.Kill(-agent.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()

	d := newDriver(t, testConfig(t, dir))
	t.Cleanup(func() {
		_ = d.Stop(context.Background(), id, 0, true)
		_ = d.Delete(context.Background(), id)
	})
	if st := running(t, d, id); st.PID != pid {
		t.Fatalf("adopted guest has pid %d, want %d", st.PID, pid)
	}
	if ppid := procStatus(t, shim)["PPid"]; ppid == strconv.Itoa(agent.Process.Pid) {
		t.Fatalf("the shim's parent is still the dead agent")
	}
	t0 := time.Now()
	if err := d.Stop(context.Background(), id, 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	// The orphaned shim lingers as a zombie until PID 1 reaps it; that
	// does not hold Stop up.
	if el := time.Since(t0); el > time.Second {
		t.Errorf("Stop took %s", el)
	}
	if st := waitExited(t, d, id); *st.ExitCode != 143 {
		t.Fatalf("Status = %+v", st)
	}
	waitGone(t, pid)
	waitGone(t, shim)
}

func unixGetsid(pid int) (int, error) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(sid), nil
}

// TestExitWithoutDriver: a guest that ends while no driver exists shows its
// exit to the next one.
func TestExitWithoutDriver(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	d1 := newDriver(t, cfg)
	spec := guest(t, d1, driver.Spec{Config: json.RawMessage(`{"command": ["/bin/sh", "-c", "sleep 0.2; exit 7"]}`)})
	shim := shimPID(t, dir, spec.ID)
	d1 = nil
	waitGone(t, shim)

	d2 := newDriver(t, cfg)
	st, err := d2.Status(context.Background(), spec.ID)
	if err != nil || st.State != driver.GuestExited || st.ExitCode == nil || *st.ExitCode != 7 || st.Reason != "exited with code 7" {
		t.Fatalf("Status = %+v, %v; want exited with code 7", st, err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(readTrim(t, filepath.Join(dir, spec.ID, "exit.json"))), &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"exit_code", "reason", "started_at", "exited_at"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("exit.json lacks %s: %v", k, rec)
		}
	}
}

// TestShimSignalled: the shim stops its guest gracefully on SIGTERM and
// records the exit.
func TestShimSignalled(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	d := newDriver(t, testConfig(t, dir))
	spec := guest(t, d, driver.Spec{Config: json.RawMessage(`{"command": ["/bin/sleep", "3600"]}`)})
	running(t, d, spec.ID)
	if err := syscall.Kill(shimPID(t, dir, spec.ID), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := waitExited(t, d, spec.ID); st.ExitCode == nil || *st.ExitCode != 143 {
		t.Fatalf("Status = %+v, want killed by SIGTERM", st)
	}
}

// TestShimKilled: a guest never runs unsupervised. When its shim is killed,
// the guest dies with it, and the driver reports it ended.
func TestShimKilled(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	d := newDriver(t, testConfig(t, dir))
	spec := guest(t, d, driver.Spec{Config: json.RawMessage(`{"command": ["/bin/sleep", "3600"]}`)})
	pid := running(t, d, spec.ID).PID
	if err := syscall.Kill(shimPID(t, dir, spec.ID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	st := waitExited(t, d, spec.ID)
	if st.ExitCode != nil || st.Reason == "" {
		t.Fatalf("Status = %+v, want exited with a reason and no known exit code", st)
	}
	if err := d.Stop(context.Background(), spec.ID, time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// It starts again.
	if err := d.Start(context.Background(), spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	running(t, d, spec.ID)
}

// TestDeleteLeavesNothing: after Delete, no process, cgroup or file of the
// guest is left, not even a child that escaped its process group.
func TestDeleteLeavesNothing(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	d := newDriver(t, testConfig(t, dir))
	ctx := context.Background()
	spec := driver.Spec{ID: uuid.NewString(), UID: newUID(), Config: json.RawMessage(
		`{"command": ["/bin/sh", "-c", "setsid sleep 3600 & echo started; exec sleep 3600"]}`)}
	spec.GID = spec.UID
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(uidProcs(spec.UID)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(uidProcs(spec.UID)); n != 2 {
		t.Fatalf("%d processes of the guest's uid, want 2", n)
	}
	if err := d.Stop(ctx, spec.ID, 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if p := uidProcs(spec.UID); len(p) != 0 {
		t.Errorf("processes left: %v", p)
	}
	if _, err := os.Stat(filepath.Join(dir, spec.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("guest directory left: %v", err)
	}
	for _, c := range []string{"", "cpu", "cpuacct", "memory", "pids", "freezer"} {
		p := filepath.Join("/sys/fs/cgroup", c, cgroupParent, spec.ID)
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left: %v", p, err)
		}
	}
	if _, err := d.Status(ctx, spec.ID); !novacron.IsCode(err, novacron.ENotFound) {
		t.Errorf("Status after Delete: %v", err)
	}
}

// uidProcs lists the live processes of uid.
func uidProcs(uid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) && alive(pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// TestLogRotation: a chatty guest's log stays within the cap, rotated into
// the configured number of files, and the tail is its latest output.
func TestLogRotation(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.LogMaxBytes, cfg.LogFiles = 4096, 2
	d := newDriver(t, cfg)
	spec := guest(t, d, driver.Spec{Config: json.RawMessage(`{"command": ["/bin/sh", "-c",
		"i=0; while [ $i -lt 3000 ]; do echo \"line $i of a chatty guest\"; i=$((i+1)); done; exec sleep 3600"]}`)})
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := d.Logs(ctx, spec.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) == "line 2999 of a chatty guest\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last line %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	logs := filepath.Join(dir, spec.ID, "logs")
	entries, err := os.ReadDir(logs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, e := range entries {
		fi, _ := e.Info()
		names = append(names, e.Name())
		total += fi.Size()
		if fi.Size() > 4096 {
			t.Errorf("%s has %d bytes, cap 4096", e.Name(), fi.Size())
		}
	}
	if strings.Join(names, " ") != "output.log output.log.1 output.log.2" {
		t.Errorf("log files %v, want the current one and 2 rotated", names)
	}
	if total > 3*4096 {
		t.Errorf("logs hold %d bytes", total)
	}
	b, err := d.Logs(ctx, spec.ID, 200)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 200 || lines[0] != "line 2800 of a chatty guest" {
		t.Errorf("tail 200: %d lines, first %q", len(lines), lines[0])
	}
}

// TestOOM: a guest that outgrows its memory limit is killed by the OOM
// killer, and its status says so.
func TestOOM(t *testing.T) {
	needRoot(t)
	d := newDriver(t, testConfig(t, t.TempDir()))
	// tail buffers a "line" that never ends.
	spec := guest(t, d, driver.Spec{MemoryMB: 64, Config: json.RawMessage(`{"command": ["/usr/bin/tail", "/dev/zero"]}`)})
	st := waitExited(t, d, spec.ID)
	if st.Reason != "out of memory" || st.ExitCode == nil || *st.ExitCode != 137 {
		t.Fatalf("Status = %+v (exit %v), want out of memory, 137", st, st.ExitCode)
	}
}

// TestStartFailure: a command that cannot be executed fails the start with
// the reason, and leaves the guest as it was.
func TestStartFailure(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	d := newDriver(t, testConfig(t, dir))
	ctx := context.Background()
	for _, tc := range []struct{ config, msg string }{
		{`{"command": ["/nope"]}`, "config.command: /nope: no such file or directory"},
		{`{"command": ["/etc/shadow"]}`, "config.command: /etc/shadow: permission denied"},
		{`{"command": ["/root/x"]}`, "config.command: /root/x: permission denied"},
	} {
		spec := driver.Spec{ID: uuid.NewString(), UID: newUID(), Config: json.RawMessage(tc.config)}
		spec.GID = spec.UID
		if err := d.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
		err := d.Start(ctx, spec)
		var e *novacron.Error
		if !errors.As(err, &e) || e.Code != novacron.EOperationFailed || e.Message != tc.msg || e.Details["field"] != "config.command" {
			t.Errorf("Start(%s) = %#v (%v), want %q", tc.config, err, err, tc.msg)
			b, _ := os.ReadFile(filepath.Join(dir, spec.ID, "shim.log"))
			t.Logf("shim.log: %s", b)
		}
		if st, err := d.Status(ctx, spec.ID); err != nil || st.State != driver.GuestCreated {
			t.Errorf("after a failed start: %+v, %v; want created", st, err)
		}
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", cgroupParent, spec.ID)); err == nil {
			t.Errorf("cgroup left after a failed start")
		}
		if err := d.Delete(ctx, spec.ID); err != nil {
			t.Error(err)
		}
	}
}

// TestRealBinary runs a guest under the real novacron binary's shim
// command, as the agent does.
func TestRealBinary(t *testing.T) {
	needRoot(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "go", "the go tool builds the novacron binary")
	}
	bin := filepath.Join(t.TempDir(), "novacron")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, "../../../cmd/novacron").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.ShimCommand = []string{bin, "shim"}
	d := newDriver(t, cfg)
	spec := guest(t, d, driver.Spec{Config: json.RawMessage(`{"command": ["/bin/sh", "-c", "echo hello; exec sleep 3600"]}`)})
	running(t, d, spec.ID)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b, _ := d.Logs(ctx, spec.ID, 0); string(b) == "hello\n" {
			break
		}
		if time.Now().After(deadline) {
			b, _ := d.Logs(ctx, spec.ID, 0)
			t.Fatalf("Logs = %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.Stop(ctx, spec.ID, 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	if st := waitExited(t, d, spec.ID); *st.ExitCode != 143 {
		t.Fatalf("Status = %+v", st)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestNewRefusesADirectoryTooLongForSockets(t *testing.T) {
	long := "/tmp/" + strings.Repeat("d", 70)
	if _, err := process.New(process.Config{Dir: long}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("New(%d-byte dir) = %v, want a too-long error", len(long), err)
	}
	if _, err := process.New(process.Config{Dir: t.TempDir()}); err != nil {
		t.Fatalf("New(short dir): %v", err)
	}
}

// TestStats: a guest that burns CPU and holds memory shows it in its stats,
// read from its own cgroup; a stopped guest has none.
func TestStats(t *testing.T) {
	needRoot(t)
	d := newDriver(t, testConfig(t, t.TempDir()))
	// A shell holding about 32 MiB in a variable, then spinning.
	spec := guest(t, d, driver.Spec{MemoryMB: 256, Config: json.RawMessage(
		`{"command": ["/bin/sh", "-c", "x=$(head -c 33554432 /dev/zero | tr '\\0' a); echo held; while :; do :; done"]}`)})
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, _ := d.Logs(ctx, spec.ID, 0); bytes.Contains(b, []byte("held")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the guest never held its memory")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	st, err := d.Stats(ctx, spec.ID)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.CPUSeconds < 0.1 || st.MemoryBytes < 32<<20 || st.Pids == nil || *st.Pids < 1 || st.NetworkRxBytes != nil {
		t.Fatalf("Stats = %+v (pids %v): want CPU time, over 32 MiB and a process, no network", st, st.Pids)
	}
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stats(ctx, spec.ID); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Fatalf("Stats of a stopped guest = %v, want invalid_state", err)
	}
}
