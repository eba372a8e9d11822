package main

// Process guests under the real binary: a control plane killed with
// SIGKILL leaves its guests running, and the next one on the same data
// directory adopts them, records what happened while it was away and
// settles the operation it was cut off in.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novacron/novacron/internal/testenv"
)

// The uids of this file's guests: a range of their own, so that the checks
// for leftover processes see no other package's guests.
const (
	guestUIDMin = 260000
	guestUIDMax = 260099
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "process guests need root for their cgroups and uids")
	}
}

// rest calls the API of one server with a bearer token.
type rest struct {
	t     *testing.T
	base  string
	token string
}

type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func (c *rest) do(method, path string, body any) reply {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	r.raw, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(r.raw, &r.body)
	return r
}

// want calls the API and fails the test unless the status is status.
func (c *rest) want(method, path string, body any, status int) reply {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r
}

func (c *rest) vm(id string) reply {
	c.t.Helper()
	return c.want("GET", "/api/vm/vms/"+id, nil, 200)
}

// eventually polls f until it returns nil, or fails after 30 s.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupDirs are the guest's cgroups on the host, in every hierarchy
// (cgroup v1) or the unified one (v2).
func cgroupDirs(id string) []string {
	v1, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "novacron", id))
	v2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "novacron", id))
	return append(v1, v2...)
}

// procState is the state letter of /proc/PID/stat (0: no such process).
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// alive reports whether pid runs; a zombie is dead.
func alive(pid int) bool {
	s := procState(pid)
	return s != 0 && s != 'Z' && s != 'X'
}

// guestPids are the live processes in the guest's cgroups, sorted.
func guestPids(id string) []int {
	var pids []int
	for _, d := range cgroupDirs(id) {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && alive(pid) && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return pids
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// procUID is the real uid of pid, or -1.
func procUID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				uid, _ := strconv.Atoi(f[0])
				return uid
			}
		}
	}
	return -1
}

// sleeper is the one process of a guest running /bin/sleep 3600 (through
// `exec` or not), as an unprivileged uid of the range.
func sleeper(t *testing.T, id string) int {
	t.Helper()
	var found int
	eventually(t, "the sleep 3600 of guest "+id, func() error {
		var got []string
		for _, pid := range guestPids(id) {
			got = append(got, fmt.Sprintf("%d %q uid %d", pid, cmdline(pid), procUID(pid)))
			if strings.HasSuffix(cmdline(pid), "sleep 3600") {
				if uid := procUID(pid); uid < guestUIDMin || uid > guestUIDMax {
					return fmt.Errorf("pid %d runs as uid %d, outside %d-%d", pid, uid, guestUIDMin, guestUIDMax)
				}
				found = pid
				return nil
			}
		}
		return fmt.Errorf("the guest's cgroup holds %v", got)
	})
	return found
}

// frozen reports whether the guest's cgroup is frozen.
func frozen(id string) bool {
	for _, d := range cgroupDirs(id) {
		if b, err := os.ReadFile(filepath.Join(d, "freezer.state")); err == nil {
			return strings.TrimSpace(string(b)) == "FROZEN"
		}
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.freeze")); err == nil {
			return strings.TrimSpace(string(b)) == "1"
		}
	}
	return false
}

// uidRangePids lists the live processes whose real uid is in this file's
// guest range.
func uidRangePids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if uid := procUID(pid); uid >= guestUIDMin && uid <= guestUIDMax && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// reapGuests kills whatever guests and shims a failed test left under the
// data directory, and removes their cgroups. It is the safety net; a
// passing test has already deleted every VM through the API.
func reapGuests(t *testing.T, data string) {
	shims, _ := filepath.Glob(filepath.Join(data, "agent", "process", "*", "shim.pid"))
	var ids []string
	for _, pf := range shims {
		ids = append(ids, filepath.Base(filepath.Dir(pf)))
		b, _ := os.ReadFile(pf)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 &&
			alive(pid) && strings.Contains(cmdline(pid), " shim") {
			t.Logf("cleanup: killing shim %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, id := range ids {
		for _, d := range cgroupDirs(id) {
			// A frozen process does not die until thawed.
			_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
			_ = os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0)
		}
		for _, pid := range guestPids(id) {
			t.Logf("cleanup: killing guest process %d (%s)", pid, cmdline(pid))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, pid := range uidRangePids() {
		t.Logf("cleanup: killing process %d of a guest uid (%s)", pid, cmdline(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for _, d := range cgroupDirs(id) {
			for os.Remove(d) != nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// checkNothingLeft checks that the host holds nothing of the guests ids:
// no process of a guest uid, no cgroup, no guest directory.
func checkNothingLeft(t *testing.T, data string, ids []string) {
	t.Helper()
	eventually(t, "nothing left on the host", func() error {
		if pids := uidRangePids(); len(pids) > 0 {
			var s []string
			for _, pid := range pids {
				s = append(s, fmt.Sprintf("%d (%s)", pid, cmdline(pid)))
			}
			return fmt.Errorf("processes of guest uids run: %s", strings.Join(s, ", "))
		}
		for _, id := range ids {
			if d := cgroupDirs(id); len(d) > 0 {
				return fmt.Errorf("cgroups left: %v", d)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(data, "agent", "process", "*")); len(left) > 0 {
			return fmt.Errorf("guest directories left: %v", left)
		}
		if left, _ := filepath.Glob(filepath.Join(data, "agent", "guests", "*")); len(left) > 0 {
			return fmt.Errorf("guest records left: %v", left)
		}
		return nil
	})
}

func TestServerKill9LeavesGuestsRunning(t *testing.T) {
	requireRoot(t)
	t.Run("sqlite", func(t *testing.T) { testKill9(t, "") })
	t.Run("postgres", func(t *testing.T) { testKill9(t, testenv.PostgresURL(t)) })
}

func testKill9(t *testing.T, db string) {
	// Cleanups run last registered first: the server dies, then the
	// guests it left, then the data directory goes.
	data, err := os.MkdirTemp("", "nc") // short: unix sockets live below it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	t.Cleanup(func() { reapGuests(t, data) })
	args := []string{"server", "--listen", "127.0.0.1:0", "--data-dir", data,
		"--reconcile-interval", "200ms", "--stop-timeout", "5s", "--node-name", "kill9",
		"--guest-uid-min", strconv.Itoa(guestUIDMin), "--guest-uid-max", strconv.Itoa(guestUIDMax)}
	if db != "" {
		args = append(args, "--db", db)
	}
	env := []string{"NOVACRON_ADMIN_PASSWORD=" + adminPassword}

	p := run(t, "", env, args...)
	base := "http://" + p.started()["listen"].(string)
	st, token := login(t, client, base, "admin", adminPassword)
	if st != 200 {
		t.Fatalf("login: status %d", st)
	}
	c := &rest{t: t, base: base, token: token}
	create := func(name, policy string, argv ...string) string {
		r := c.want("POST", "/api/vm/vms?wait=1", map[string]any{"name": name, "driver": "process", "cpus": 1,
			"memory_mb": 64, "start": true, "restart_policy": policy, "config": map[string]any{"command": argv}}, 200)
		if r.str("state") != "running" {
			t.Fatalf("created %s: %s", name, r.raw)
		}
		return r.str("id")
	}
	logsHave := func(id, text string) {
		t.Helper()
		eventually(t, "logs of "+id+" say "+text, func() error {
			r := c.do("GET", "/api/vm/vms/"+id+"/logs", nil)
			if r.status != 200 || !bytes.Contains(r.raw, []byte(text)) {
				return fmt.Errorf("status %d: %q", r.status, r.raw)
			}
			return nil
		})
	}

	// A guest that does not stop on SIGTERM, and says when it gets one.
	stubborn := create("stubborn", "never", "/bin/sh", "-c", "trap 'echo got TERM' TERM; echo ready; while :; do sleep 1; done")
	logsHave(stubborn, "ready")
	steady := create("steady", "never", "/bin/sleep", "3600")
	paused := create("paused", "never", "/bin/sleep", "3600")
	if r := c.want("POST", "/api/vm/vms/"+paused+"/pause?wait=1", nil, 200); r.str("state") != "paused" {
		t.Fatalf("pause: %s", r.raw)
	}
	// These two end while no control plane runs: when the test creates the
	// file "go" in their working directories (a timer would race with a
	// loaded machine).
	exits := create("exits", "never", "/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.1; done; exit 7")
	crashes := create("crashes", "on-failure", "/bin/sh", "-c",
		"if [ -e crashed ]; then exec sleep 3600; fi; while [ ! -e go ]; do sleep 0.1; done; touch crashed; exit 1")
	ids := []string{stubborn, steady, paused, exits, crashes}

	steadyPID, pausedPID := sleeper(t, steady), sleeper(t, paused)
	if !frozen(paused) {
		t.Fatal("the paused guest's cgroup is not frozen")
	}
	stubbornPIDs := guestPids(stubborn)
	if len(stubbornPIDs) == 0 {
		t.Fatal("the stubborn guest has no process")
	}

	// The control plane dies in the middle of a graceful stop that would
	// wait 30 s.
	r := c.want("POST", "/api/vm/vms/"+stubborn+"/stop", map[string]any{"timeout_s": 30}, 202)
	loc := r.header.Get("Location")
	if r.str("state") != "stopping" || !strings.HasPrefix(loc, "/api/operations/") {
		t.Fatalf("stop answered %s, Location %q", r.raw, loc)
	}
	logsHave(stubborn, "got TERM")
	if op := c.want("GET", loc, nil, 200); op.str("status") != "running" {
		t.Fatalf("the stop is no longer running: %s", op.raw)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server survived SIGKILL")
	}
	killed := time.Now()

	// The guests outlive it; two of them end meanwhile.
	for _, id := range []string{exits, crashes} {
		if len(guestPids(id)) == 0 {
			t.Fatalf("guest %s ended before the kill", id)
		}
		if err := os.WriteFile(filepath.Join(data, "agent", "process", id, "work", "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the two guests ended", func() error {
		if pids := append(guestPids(exits), guestPids(crashes)...); len(pids) > 0 {
			return fmt.Errorf("still running: %v", pids)
		}
		return nil
	})
	time.Sleep(time.Until(killed.Add(3 * time.Second)))
	for name, pid := range map[string]int{"steady": steadyPID, "paused": pausedPID} {
		if !alive(pid) {
			t.Fatalf("the %s guest (pid %d) died with the control plane", name, pid)
		}
	}
	if !frozen(paused) {
		t.Error("the paused guest thawed while no control plane ran")
	}
	if !slices.ContainsFunc(stubbornPIDs, alive) {
		t.Fatal("the stubborn guest died with the control plane")
	}

	// The next control plane on the same data directory: the session of
	// the first one still holds.
	p2 := run(t, "", env, args...)
	c.base = "http://" + p2.started()["listen"].(string)
	t.Logf("restarted %s after the kill", time.Since(killed).Round(time.Millisecond))

	if r := c.vm(steady); r.str("state") != "running" {
		t.Errorf("steady VM after the restart: %s", r.raw)
	}
	if pid := sleeper(t, steady); pid != steadyPID {
		t.Errorf("the steady guest is pid %d, was %d: it was restarted", pid, steadyPID)
	}
	if r := c.vm(paused); r.str("state") != "paused" {
		t.Errorf("paused VM after the restart: %s", r.raw)
	}
	if pid := sleeper(t, paused); pid != pausedPID || !frozen(paused) {
		t.Errorf("the paused guest is pid %d (was %d), frozen %v", pid, pausedPID, frozen(paused))
	}
	eventually(t, "the exit code recorded", func() error {
		if r := c.vm(exits); r.str("state") != "failed" || r.body["exit_code"] != 7.0 || !strings.Contains(r.str("state_reason"), "7") {
			return fmt.Errorf("%s", r.raw)
		}
		return nil
	})
	eventually(t, "the on-failure VM running again", func() error {
		if r := c.vm(crashes); r.str("state") != "running" || r.str("operation_id") != "" {
			return fmt.Errorf("%s", r.raw)
		}
		return nil
	})
	sleeper(t, crashes)

	// The stop cut short is settled, not left running; the VM shows what
	// the node runs.
	eventually(t, "the interrupted stop settled", func() error {
		op := c.want("GET", loc, nil, 200)
		switch op.str("status") {
		case "failed":
			if op.str("error") == "" {
				return fmt.Errorf("failed without a reason: %s", op.raw)
			}
		case "succeeded":
		default:
			return fmt.Errorf("%s", op.raw)
		}
		return nil
	})
	vm := c.vm(stubborn)
	running := slices.ContainsFunc(stubbornPIDs, alive)
	switch state := vm.str("state"); {
	case state == "running" && running, (state == "stopped" || state == "failed") && !running:
	default:
		t.Fatalf("the stubborn VM is %s while its guest runs: %v", vm.raw, running)
	}
	if vm.str("operation_id") != "" {
		t.Errorf("the stubborn VM still has an operation: %s", vm.raw)
	}
	if p2.logged("settling an interrupted operation") == nil {
		t.Error("the restarted server did not log the interrupted operation")
	}
	// It is under control again: a forced stop ends it at once.
	if r := c.want("POST", "/api/vm/vms/"+stubborn+"/stop?wait=1", map[string]any{"force": true}, 200); r.str("state") != "stopped" {
		t.Fatalf("forced stop: %s", r.raw)
	}
	if slices.ContainsFunc(stubbornPIDs, alive) || len(guestPids(stubborn)) > 0 {
		t.Fatal("the stubborn guest survived its forced stop")
	}

	// Delete everything; nothing may be left on the host.
	for _, id := range ids {
		c.want("DELETE", "/api/vm/vms/"+id+"?wait=1", nil, 204)
	}
	if l := c.want("GET", "/api/vm/vms", nil, 200); len(l.body["items"].([]any)) != 0 {
		t.Fatalf("VMs left: %s", l.raw)
	}
	checkNothingLeft(t, data, ids)
	for _, l := range p2.logLines() {
		if l["level"] == "ERROR" {
			t.Errorf("error logged: %v", l)
		}
	}
	p2.stop()
}
