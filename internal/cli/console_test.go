package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"golang.org/x/term"
)

// serveConsole is the fake server's console: the running qemu VM "slow"
// echoes what is typed; a message holding "bye" makes it close normally,
// as when the VM stops, and one holding "shutdown" closes it as a server
// shutting down does. Other VMs are refused as the server refuses them.
func (f *fakeVMAPI) serveConsole(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":%q,"request_id":"req-7"}}`, code, msg)
	}
	if r.Header.Get("Authorization") != "Bearer tok" {
		fail(401, "unauthorized", "authentication required")
		return
	}
	id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/vm/vms/"), "/console")
	f.mu.Lock()
	vm := f.find(id)
	f.mu.Unlock()
	switch {
	case vm == nil:
		fail(404, "not_found", "vm not found")
		return
	case vm.Driver != novacron.DriverQEMU:
		fail(400, "invalid_request", vm.Driver+" VMs have no console")
		return
	case vm.State != novacron.StateRunning:
		fail(409, "invalid_state", "vm "+vm.Name+" is "+string(vm.State)+": its console is there only while it runs")
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"novacron"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		_, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		f.mu.Lock()
		f.typed = append(f.typed, b...)
		f.mu.Unlock()
		if err := c.Write(r.Context(), websocket.MessageBinary, b); err != nil {
			return
		}
		switch {
		case bytes.Contains(b, []byte("bye")):
			c.Close(websocket.StatusNormalClosure, "the console of vm "+vm.Name+" ended")
			return
		case bytes.Contains(b, []byte("shutdown")):
			c.Close(websocket.StatusGoingAway, "the server is shutting down")
			return
		}
	}
}

func TestVMConsolePiped(t *testing.T) {
	f, c := vmCLI(t)
	// stdin ends: the output that follows within a second is printed.
	start := time.Now()
	code, out, errOut := c.run("uname\n", "vm", "console", "slow")
	if code != 0 || out != "uname\n" || errOut != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d := time.Since(start); d < consoleLinger || d > consoleLinger+5*time.Second {
		t.Errorf("ended after %s", d)
	}
	if !f.seen("GET /api/vm/vms/" + idSlow + "/console") {
		t.Errorf("requests = %v", f.requestLog())
	}
	// The console closes (the VM stopped): no need to wait.
	start = time.Now()
	code, out, errOut = c.run("poweroff; bye\n", "vm", "console", idSlow)
	if code != 0 || out != "poweroff; bye\n" || errOut != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d := time.Since(start); d >= consoleLinger {
		t.Errorf("a closed console ended after %s", d)
	}
	// A server that goes away is an error.
	code, _, errOut = c.run("shutdown\n", "vm", "console", "slow")
	if code != 1 || !strings.Contains(errOut, "the server is shutting down (code 1001)") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	// Binary input goes through as it is, Ctrl-] included.
	code, out, _ = c.run("\x00\x1d\xffbye", "vm", "console", "slow")
	if code != 0 || out != "\x00\x1d\xffbye" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestVMConsoleRefused(t *testing.T) {
	_, c := vmCLI(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"vm", "console", "db"}, 1, "vm db is stopped: its console is there only while it runs (invalid_state, request req-7)"},
		{[]string{"vm", "console", "web"}, 1, "process VMs have no console (invalid_request"},
		{[]string{"vm", "console", "nope"}, 1, `no VM named "nope"`},
		{[]string{"vm", "console", "slow", "--tail", "5"}, 2, "--tail goes with --log"},
		{[]string{"vm", "console", "slow", "--log", "--tail", "-1"}, 2, "--tail must not be negative"},
		{[]string{"vm", "console"}, 2, "accepts 1 arg(s)"},
	} {
		code, out, errOut := c.run("", tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

func TestVMConsoleLog(t *testing.T) {
	f, c := vmCLI(t)
	if out := c.mustRun("", "vm", "console", "slow", "--log"); out != "Linux version 6.1\r\nlogin: \r\n" {
		t.Errorf("log %q", out)
	}
	if out := c.mustRun("", "vm", "console", "slow", "--log", "--tail", "1"); out != "login: \r\n" {
		t.Errorf("log --tail 1 %q", out)
	}
	if !f.seen("GET /api/vm/vms/" + idSlow + "/console/log?tail=1") {
		t.Errorf("requests = %v", f.requestLog())
	}
	if f.seen("GET /api/vm/vms/" + idSlow + "/console") {
		t.Error("--log attached to the console")
	}
}

func TestVMStats(t *testing.T) {
	f, c := vmCLI(t)
	out := c.mustRun("", "vm", "stats", "slow")
	want := `VM:            slow
CPU time:      12.35 s
Memory:        256.0 MiB
Disk read:     3.0 GiB
Disk written:  1.5 KiB
Disk reads:    42
Disk writes:   -
Processes:     -
Network in:    0 B
Network out:   -
Sampled:       2024-05-06T07:08:09Z
`
	if out != want {
		t.Errorf("stats:\n%s\nwant:\n%s", out, want)
	}
	if !f.seen("GET /api/vm/vms/" + idSlow + "/stats") {
		t.Errorf("requests = %v", f.requestLog())
	}
	out = c.mustRun("", "vm", "stats", "slow", "-o", "json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil || st["cpu_seconds"] != 12.345 || st["network_rx_bytes"] != 0.0 {
		t.Errorf("json %s: %v", out, err)
	}
	if _, ok := st["network_tx_bytes"]; ok {
		t.Errorf("json has a counter the driver cannot read: %s", out)
	}
	code, _, errOut := c.run("", "vm", "stats", "db")
	if code != 1 || !strings.Contains(errOut, "vm db is stopped (invalid_state") {
		t.Errorf("stopped: exit %d, %q", code, errOut)
	}
	code, _, errOut = c.run("", "vm", "stats", "web")
	if code != 1 || !strings.Contains(errOut, "keeps no stats") {
		t.Errorf("process: exit %d, %q", code, errOut)
	}
}

// openPTY opens a pseudo-terminal and returns its master and slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("ptsname: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// syncWriter is a buffer the test reads while the command writes.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestVMConsoleTerminal attaches on a terminal: the hint, raw input (a
// line end and Ctrl-C go through as bytes), Ctrl-] detaching, and the
// terminal as it was afterwards.
func TestVMConsoleTerminal(t *testing.T) {
	f := newFakeVMAPI(t)
	master, slave := openPTY(t)
	before, err := term.GetState(int(slave.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncWriter
	e := &env{stdin: slave, stdout: &stdout, stderr: &stderr, lookupEnv: func(k string) (string, bool) {
		v, ok := map[string]string{"NOVACRON_SERVER": f.srv.URL, "NOVACRON_TOKEN": "tok",
			"XDG_CONFIG_HOME": t.TempDir(), "HOME": t.TempDir()}[k]
		return v, ok
	}}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), e, []string{"vm", "console", "slow"}) }()

	waitFor := func(what string, w *syncWriter, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(w.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q does not hold %q", what, w.String(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("hint", &stderr, "Connected to the console of slow; Ctrl-] to detach\n")
	// Raw mode is on once the hint is out; give MakeRaw a moment.
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
	if _, err := master.Write([]byte("ls\r\x03")); err != nil {
		t.Fatal(err)
	}
	waitFor("echo", &stdout, "ls\r\x03")
	if _, err := master.Write([]byte("x\x1dnot sent")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-] did not detach")
	}
	// What was typed before Ctrl-] reached the console, not what
	// followed it.
	deadline = time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		typed := string(f.typed)
		f.mu.Unlock()
		if typed == "ls\r\x03x" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console received %q", typed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasSuffix(stderr.String(), "\nDetached from the console of slow.\n") {
		t.Errorf("stderr %q", stderr.String())
	}
	after, err := term.GetState(int(slave.Fd()))
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("the terminal was not restored: %v", err)
	}
}
