package cli

// vm exec and vm logs --follow against the real API, VM service and node
// agent, over the fake driver: its commands echo their arguments (stdout),
// environment and working directory (stderr), and with a terminal echo
// what is typed and say when they are resized.

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/agent"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/httpapi"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/vm"
	"golang.org/x/term"
)

// execWorld is a control plane with a running fake process VM "box" owned
// by the admin, and a user "bob" of the same tenant.
type execWorld struct {
	url, admin, bob string
	drv             *fake.Driver
	vmID            string
}

func newExecWorld(t *testing.T) *execWorld {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ten := &novacron.Tenant{Name: "default"}
	if err := st.CreateTenant(ctx, ten); err != nil {
		t.Fatal(err)
	}
	w := &execWorld{drv: fake.New(novacron.DriverProcess)}
	for _, u := range []struct {
		name string
		role novacron.Role
		tok  *string
	}{{"admin", novacron.RoleAdmin, &w.admin}, {"bob", novacron.RoleUser, &w.bob}} {
		user := &novacron.User{Username: u.name, Email: u.name + "@example.com", Role: u.role, TenantID: ten.ID, PasswordHash: "x"}
		if err := st.CreateUser(ctx, user); err != nil {
			t.Fatal(err)
		}
		tok, hash := auth.NewAPIToken()
		if err := st.CreateSession(ctx, &novacron.Session{UserID: user.ID, Kind: novacron.SessionToken, Name: "test",
			TokenHash: hash, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		*u.tok = tok
	}
	log := slog.New(slog.DiscardHandler)
	authn, err := auth.NewService(st, auth.Config{Secret: []byte(strings.Repeat("s", auth.MinSecretLen))}, log)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{Dir: filepath.Join(dir, "agent"), NodeName: "node1", Drivers: []driver.Driver{w.drv}})
	if err != nil {
		t.Fatal(err)
	}
	vms := vm.New(st, vm.Config{ReconcileInterval: 100 * time.Millisecond, StopTimeout: time.Second}, log)
	t.Cleanup(vms.Close)
	if _, err := vms.AddNode(ctx, ag, "local"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{}, st, authn, vms, log).Handler())
	t.Cleanup(srv.Close)
	w.url = srv.URL
	v, err := api.New(w.url, api.WithToken(w.admin)).CreateVM(ctx, api.CreateVMRequest{Name: "box", Driver: novacron.DriverProcess,
		CPUs: 1, MemoryMB: 64, Start: true, Config: []byte(`{"output":"one\ntwo\n"}`)}, api.WaitOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	w.vmID = v.ID
	return w
}

func (w *execWorld) cli(t *testing.T, token string) *cli {
	return newCLI(t, map[string]string{"NOVACRON_SERVER": w.url, "NOVACRON_TOKEN": token})
}

func TestVMExec(t *testing.T) {
	w := newExecWorld(t)
	c := w.cli(t, w.admin)
	w.drv.SetExecExitCode(w.vmID, 3)
	code, stdout, stderr := c.run("ignored", "vm", "exec", "-e", "A=1", "--env", "B=x=y", "-w", "/srv", "box", "--", "/bin/echo", "-n", "hi")
	if code != 3 || stdout != "-n hi\n" || stderr != "A=1\nB=x=y\n/srv" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	w.drv.SetExecExitCode(w.vmID, 0)
	// Without --, what follows the VM is the command all the same.
	if code, stdout, _ := c.run("", "vm", "exec", "box", "/bin/echo", "-t"); code != 0 || stdout != "-t\n" {
		t.Errorf("without --: exit %d, %q", code, stdout)
	}
	code, _, stderr = c.run("", "vm", "exec", "--timeout", "1s", "box", "--", "/bin/sleep", "5")
	if code != 137 || !strings.Contains(stderr, "its timeout passed") {
		t.Errorf("timeout: exit %d, %q", code, stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", []string{"box", "--"}, 2, "no command"},
		{"a bad env", []string{"-e", "NOPE", "box", "--", "/bin/true"}, 2, "NAME=value"},
		{"a timeout with -i", []string{"-i", "--timeout", "5s", "box", "--", "/bin/true"}, 2, "--timeout"},
		{"a timeout too long", []string{"--timeout", "2h", "box", "--", "/bin/true"}, 2, "--timeout"},
		{"-t without a terminal", []string{"-t", "box", "--", "/bin/sh"}, 2, "-t needs a terminal"},
		{"a relative command", []string{"box", "--", "sh"}, 1, "absolute path"},
		{"no such VM", []string{"nope", "--", "/bin/true"}, 1, "nope"},
	} {
		code, _, stderr := c.run("", append([]string{"vm", "exec"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, %q; want %d and %q", tc.name, code, stderr, tc.code, tc.want)
		}
	}
	// A user who is not the VM's owner.
	code, _, stderr = w.cli(t, w.bob).run("", "vm", "exec", "box", "--", "/bin/true")
	if code != 1 || !strings.Contains(stderr, "forbidden") {
		t.Errorf("bob: exit %d, %q", code, stderr)
	}
}

func TestVMExecPiped(t *testing.T) {
	w := newExecWorld(t)
	w.drv.SetExecExitCode(w.vmID, 4)
	code, stdout, stderr := w.cli(t, w.admin).run("piped input", "vm", "exec", "-i", "box", "--", "/bin/cat")
	if code != 4 || stdout != "piped input" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// setWinsize sets the size of a pseudo-terminal.
func setWinsize(t *testing.T, f interface{ Fd() uintptr }, cols, rows uint16) {
	t.Helper()
	ws := struct{ rows, cols, x, y uint16 }{rows, cols, 0, 0}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); e != 0 {
		t.Fatalf("TIOCSWINSZ: %v", e)
	}
}

// TestVMExecTerminal: -t on a terminal: raw, its size sent at the start and
// on SIGWINCH, the exit code, the terminal restored.
func TestVMExecTerminal(t *testing.T) {
	w := newExecWorld(t)
	w.drv.SetExecExitCode(w.vmID, 6)
	master, slave := openPTY(t)
	setWinsize(t, slave, 100, 30)
	before, err := term.GetState(int(slave.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncWriter
	e := &env{stdin: slave, stdout: &stdout, stderr: &stderr, lookupEnv: func(k string) (string, bool) {
		v, ok := map[string]string{"NOVACRON_SERVER": w.url, "NOVACRON_TOKEN": w.admin,
			"XDG_CONFIG_HOME": t.TempDir(), "HOME": t.TempDir()}[k]
		return v, ok
	}}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), e, []string{"vm", "exec", "-t", "box", "--", "/bin/sh"}) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := term.GetState(int(slave.Fd()))
		if err == nil && !reflect.DeepEqual(st, before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the terminal never went raw")
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stdout.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("stdout %q does not hold %q (stderr %q)", stdout.String(), want, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	master.Write([]byte("ls\r\x03"))
	waitFor("ls\r\x03")
	setWinsize(t, slave, 132, 50)
	syscall.Kill(syscall.Getpid(), syscall.SIGWINCH)
	waitFor("resized to 132x50\r\n")
	master.Write([]byte("\x04"))
	select {
	case code := <-done:
		if code != 6 {
			t.Errorf("exit %d, stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("^D did not end the command")
	}
	after, err := term.GetState(int(slave.Fd()))
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("the terminal was not restored: %v", err)
	}
}

func TestVMLogsFollow(t *testing.T) {
	w := newExecWorld(t)
	var stdout, stderr syncWriter
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, lookupEnv: func(k string) (string, bool) {
		v, ok := map[string]string{"NOVACRON_SERVER": w.url, "NOVACRON_TOKEN": w.bob,
			"XDG_CONFIG_HOME": t.TempDir(), "HOME": t.TempDir()}[k]
		return v, ok
	}}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), e, []string{"vm", "logs", "box", "-f", "--tail", "1"}) }()
	deadline := time.Now().Add(10 * time.Second)
	for stdout.String() != "two\n" {
		if time.Now().After(deadline) {
			t.Fatalf("stdout %q (stderr %q)", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.drv.Print(w.vmID, "three\n")
	ctx := context.Background()
	if _, err := api.New(w.url, api.WithToken(w.admin)).StopVM(ctx, w.vmID, api.StopOptions{Force: true}, api.WaitOptions{Wait: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 || stdout.String() != "two\nthree\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follow did not end with the guest")
	}
}
