package cli_test

// A process VM driven through the CLI against a real control plane that
// runs real guests: its in-process node agent starts each guest under a
// shim, which is this test binary re-executed as `shim` (see TestMain), as
// the novacron binary is in production.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/cli"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/testenv"
)

// TestMain lets the test binary be the guest shim: the process driver runs
// `<this binary> shim …`, which goes through cli.Run and its hidden shim
// command exactly as `novacron shim …` does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// The uids of this file's guests, a range of their own so that the check
// for leftover processes sees no other package's guests.
const (
	vmE2EUIDMin = 261000
	vmE2EUIDMax = 261099
)

// startGuestServer starts a control plane that runs process guests, with a
// short data directory (the guests' unix sockets live below it) and a fast
// reconcile loop. At the end of the test every guest its node still has is
// stopped and deleted, then the server closes.
func startGuestServer(t *testing.T, db string) *server.Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Creating the first admin is a bcrypt of cost 12: seconds under -race,
	// far more on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := server.Open(ctx, server.Config{
		DataDir:           dir,
		DB:                db,
		Listen:            "127.0.0.1:0",
		AdminPassword:     e2eAdminPassword,
		Logger:            slog.New(slog.DiscardHandler),
		PruneInterval:     time.Hour,
		NodeName:          "cli-e2e",
		GuestUIDMin:       vmE2EUIDMin,
		GuestUIDMax:       vmE2EUIDMax,
		ReconcileInterval: 200 * time.Millisecond,
		StopTimeout:       5 * time.Second,
	})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ag := srv.Agent()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		guests, err := ag.ListGuests(ctx)
		if err != nil {
			t.Errorf("list guests: %v", err)
			return
		}
		for _, g := range guests {
			_ = ag.StopGuest(ctx, g.ID, time.Second, true)
			if err := ag.DeleteGuest(ctx, g.ID); err != nil {
				t.Errorf("delete guest %s: %v", g.ID, err)
			}
		}
	})
	return srv
}

// adminToken gives the admin an API token straight in the store: a login
// would cost a bcrypt, seconds under -race.
func adminToken(t *testing.T, srv *server.Server) string {
	t.Helper()
	ctx := context.Background()
	admin, err := srv.Store().GetUserByUsername(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := auth.NewAPIToken()
	if err := srv.Store().CreateSession(ctx, &novacron.Session{UserID: admin.ID, Kind: novacron.SessionToken,
		Name: "vm-e2e", TokenHash: hash, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// hostAlive reports whether pid runs; a zombie is dead.
func hostAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// guestCgroup reads a file of the guest's cgroup: v1's controller
// hierarchy, else the unified one ("" when neither has it).
func guestCgroup(id, controller, v1file, v2file string) string {
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, "novacron", id, v1file)); err == nil {
		return strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", "novacron", id, v2file)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

func TestCLIProcessVM(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "process guests need root for their cgroups and uids")
	}
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			db := ""
			if store == "postgres" {
				db = testenv.PostgresURL(t)
			}
			isolateEnv(t)
			srv := startGuestServer(t, db)
			t.Setenv("NOVACRON_SERVER", srv.URL())
			t.Setenv("NOVACRON_TOKEN", adminToken(t, srv))
			testCLIProcessVM(t, srv)
		})
	}
}

func testCLIProcessVM(t *testing.T, srv *server.Server) {
	ag := srv.Agent()
	// status is what the node reports of the guest.
	status := func(id string) driver.Status {
		t.Helper()
		st, err := ag.GuestStatus(context.Background(), id)
		if err != nil {
			t.Fatalf("guest status: %v", err)
		}
		return st
	}
	runningPID := func(id string) int {
		t.Helper()
		st := status(id)
		if st.State != driver.GuestRunning || st.PID == 0 || !hostAlive(st.PID) {
			t.Fatalf("the node reports %+v, want a running guest", st)
		}
		return st.PID
	}
	action := func(verb, want string) {
		t.Helper()
		if out := ok(t, "", "vm", verb, "web", "--wait"); out != "VM web: "+want+".\n" {
			t.Fatalf("vm %s --wait printed %q", verb, out)
		}
	}

	out := ok(t, "", "vm", "create", "web", "--driver", "process", "--cpus", "1", "--memory-mb", "64",
		"--start", "--wait", "--", "/bin/sh", "-c", "echo hi; env; exec sleep 3600")
	id := field(t, out, "ID")
	if field(t, out, "State") != "running" || field(t, out, "Driver") != "process" || field(t, out, "Memory") != "64 MB" {
		t.Fatalf("vm create printed:\n%s", out)
	}
	pid := runningPID(id)
	if q := guestCgroup(id, "memory", "memory.limit_in_bytes", "memory.max"); q != strconv.Itoa(64<<20) {
		t.Errorf("memory limit %q, want %d", q, 64<<20)
	}

	out = ok(t, "", "vm", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "NAME") || !regexp.MustCompile(`^web\s+running\s+process\s+1\s+64 MB\s+`).MatchString(lines[1]) {
		t.Errorf("vm list printed:\n%s", out)
	}
	var vm novacron.VM
	decode(t, ok(t, "", "vm", "show", "web", "-o", "json"), &vm)
	if vm.ID != id || vm.State != novacron.StateRunning || vm.OperationID != "" || vm.NodeStatus != "online" {
		t.Fatalf("vm show: %+v", vm)
	}
	if out := ok(t, "", "vm", "show", id); field(t, out, "Name") != "web" || field(t, out, "State") != "running" {
		t.Errorf("vm show by id printed:\n%s", out)
	}

	action("pause", "paused")
	if st := status(id); st.State != driver.GuestPaused || st.PID != pid {
		t.Errorf("after pause the node reports %+v", st)
	}
	if f := guestCgroup(id, "freezer", "freezer.state", "cgroup.freeze"); f != "FROZEN" && f != "1" {
		t.Errorf("paused guest's freezer: %q", f)
	}
	action("resume", "running")
	if got := runningPID(id); got != pid {
		t.Errorf("resume changed the pid from %d to %d", pid, got)
	}
	action("restart", "running")
	pid2 := runningPID(id)
	if pid2 == pid || hostAlive(pid) {
		t.Errorf("restart: old pid %d (alive %v), new pid %d", pid, hostAlive(pid), pid2)
	}

	eventuallyCLI(t, "logs say hi twice", func() error {
		out := ok(t, "", "vm", "logs", "web")
		if strings.Count(out, "hi\n") != 2 {
			return fmt.Errorf("logs %q", out)
		}
		// The guest's environment is its own: nothing of the agent's.
		if strings.Contains(out, "NOVACRON_") {
			return fmt.Errorf("the guest inherited the agent's environment: %q", out)
		}
		return nil
	})

	action("stop", "stopped")
	if hostAlive(pid2) {
		t.Fatalf("the guest (pid %d) survived its stop", pid2)
	}
	if st := status(id); st.State == driver.GuestRunning || st.State == driver.GuestPaused {
		t.Fatalf("after stop the node reports %+v", st)
	}

	out = ok(t, "", "vm", "update", "web", "--cpus", "2")
	if field(t, out, "CPUs") != "2" || field(t, out, "State") != "stopped" {
		t.Errorf("vm update printed:\n%s", out)
	}
	action("start", "running")
	pid3 := runningPID(id)
	if q := guestCgroup(id, "cpu", "cpu.cfs_quota_us", "cpu.max"); q != "200000" && !strings.HasPrefix(q, "200000 ") {
		t.Errorf("CPU quota after the resize: %q, want 2 CPUs", q)
	}

	out = ok(t, "", "vm", "delete", "web", "--wait")
	if out != "Deleted VM web ("+id+").\n" {
		t.Errorf("vm delete printed %q", out)
	}
	if hostAlive(pid3) {
		t.Fatalf("the guest (pid %d) survived the delete", pid3)
	}
	if _, err := ag.GuestStatus(context.Background(), id); !novacron.IsCode(err, novacron.ENotFound) {
		t.Errorf("the node still knows the deleted guest: %v", err)
	}
	if d, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "novacron", id)); len(d) > 0 {
		t.Errorf("cgroups left: %v", d)
	}
	if pids := guestUIDPids(); len(pids) > 0 {
		t.Errorf("processes of guest uids left: %v", pids)
	}
	fails(t, `no VM named "web"`, "vm", "show", "web")
	var l api.List[novacron.VM]
	decode(t, ok(t, "", "vm", "list", "-o", "json"), &l)
	if len(l.Items) != 0 {
		t.Errorf("vm list after the delete: %+v", l.Items)
	}
}

// eventuallyCLI polls f until it returns nil, or fails after 30 s.
func eventuallyCLI(t *testing.T, what string, f func() error) {
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

// guestUIDPids lists the live processes whose real uid is in this file's
// guest range.
func guestUIDPids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					if uid, _ := strconv.Atoi(f[0]); uid >= vmE2EUIDMin && uid <= vmE2EUIDMax && hostAlive(pid) {
						pids = append(pids, pid)
					}
				}
			}
		}
	}
	return pids
}
