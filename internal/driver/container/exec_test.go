package container_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/container"
)

// execOutputGrace is how long the driver reads the output of a command that
// has ended.
const execOutputGrace = 500 * time.Millisecond

// execWorld is a running container, "sleep 3600" with an environment and
// a working directory of its own.
func execWorld(t *testing.T) (context.Context, *container.Driver, driver.Spec) {
	t.Helper()
	requireRunc(t)
	ctx := testContext(t)
	dir := newDir(t)
	d := newDriver(t, dir)
	rootfs := busyboxRootfs(t, newDir(t))
	cfg, _ := json.Marshal(map[string]any{"command": []string{"/bin/sleep", "3600"},
		"env": map[string]string{"A": "from-config", "B": "from-config"}, "cwd": "/srv"})
	spec := guest(t, rootfs, cfg)
	start(t, ctx, d, spec)
	t.Cleanup(func() {
		// Every exec leaves nothing in the guest's directory.
		entries, _ := os.ReadDir(filepath.Join(dir, "guests", spec.ID))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "exec-") {
				t.Errorf("an exec left %s", e.Name())
			}
		}
	})
	return ctx, d, spec
}

func shExec(script string) driver.ExecRequest {
	return driver.ExecRequest{Command: []string{"/bin/sh", "-c", script}}
}

// TestExec: the exit code and output of a command, and that it runs as the
// container's process does: its uid and gid, environment (with the
// request's on top), working directory, cgroup, no capabilities and no new
// privileges.
func TestExec(t *testing.T) {
	ctx, d, spec := execWorld(t)
	if !d.Capabilities().Exec {
		t.Fatal("the container driver does not declare Exec")
	}

	res, err := d.Exec(ctx, spec.ID, shExec(`echo out; echo err >&2; exit 3`))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.TimedOut ||
		res.StdoutTruncated || res.StderrTruncated {
		t.Errorf("Exec = %+v (stdout %q, stderr %q)", res, res.Stdout, res.Stderr)
	}

	req := shExec(`echo $A $B; pwd; id -u; id -g`)
	req.Env = map[string]string{"B": "from-request"}
	res, err = d.Exec(ctx, spec.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("from-config from-request\n/srv\n%d\n%d\n", spec.UID, spec.GID)
	if res.ExitCode != 0 || string(res.Stdout) != want {
		t.Errorf("env, cwd, ids: %q (exit %d, stderr %q), want %q", res.Stdout, res.ExitCode, res.Stderr, want)
	}
	req = driver.ExecRequest{Command: []string{"/bin/sh", "-c", "pwd"}, Cwd: "/tmp/./"}
	if res, err = d.Exec(ctx, spec.ID, req); err != nil || string(res.Stdout) != "/tmp\n" {
		t.Errorf("cwd: %q %v", res.Stdout, err)
	}

	res, err = d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/cat", "/proc/self/status", "/proc/self/cgroup"}})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Stdout)
	for _, line := range []string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("/proc/self/status lacks %q:\n%s", line, out)
		}
	}
	if !strings.Contains(out, "/"+cgroupParent+"/"+spec.ID+"\n") {
		t.Errorf("the command is not in the container's cgroup:\n%s", out)
	}

	// Standard input.
	req = driver.ExecRequest{Command: []string{"/bin/cat"}, Stdin: []byte("typed in\n")}
	if res, err = d.Exec(ctx, spec.ID, req); err != nil || string(res.Stdout) != "typed in\n" || res.ExitCode != 0 {
		t.Errorf("stdin: %+v %v", res, err)
	}
	// A command that does not read its input is not held up by it.
	req = driver.ExecRequest{Command: []string{"/bin/true"}, Stdin: make([]byte, 1<<20)}
	if res, err = d.Exec(ctx, spec.ID, req); err != nil || res.ExitCode != 0 {
		t.Errorf("unread stdin: %+v %v", res, err)
	}

	// Output over the bound is cut, and flagged; the command still ends.
	req = shExec(`yes | head -c 300000; yes e | head -c 10 >&2`)
	req.MaxOutput = 1000
	res, err = d.Exec(ctx, spec.ID, req)
	if err != nil || res.ExitCode != 0 || len(res.Stdout) != 1000 || !res.StdoutTruncated || len(res.Stderr) != 10 ||
		res.StderrTruncated {
		t.Errorf("bounded output: exit %d, %d bytes (truncated %v), stderr %q (truncated %v), %v",
			res.ExitCode, len(res.Stdout), res.StdoutTruncated, res.Stderr, res.StderrTruncated, err)
	}

	// The timeout kills the command.
	req = shExec(`echo started; sleep 30`)
	req.Timeout = 300 * time.Millisecond
	t0 := time.Now()
	res, err = d.Exec(ctx, spec.ID, req)
	if err != nil || !res.TimedOut || res.ExitCode != 137 || string(res.Stdout) != "started\n" {
		t.Errorf("timeout: %+v %v", res, err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("a command with a timeout of 300ms took %s", took)
	}

	// A command that exits leaving a process in the background holding its
	// output is not waited for: that process is killed.
	st, err := d.Status(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if res, err = d.Exec(ctx, spec.ID, shExec(`sleep 30 & echo left; exit 2`)); err != nil || string(res.Stdout) != "left\n" || res.ExitCode != 2 {
		t.Errorf("background: %+v %v", res, err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("a command leaving a process in the background took %s", took)
	}
	waitProcs(t, st.PID, 1, "after a command left a process holding its output")
	// One that let go of the output is left alone.
	if res, err = d.Exec(ctx, spec.ID, shExec(`sleep 30 >/dev/null 2>&1 & echo left`)); err != nil || string(res.Stdout) != "left\n" {
		t.Errorf("background: %+v %v", res, err)
	}
	time.Sleep(2 * execOutputGrace)
	waitProcs(t, st.PID, 2, "a process in the background without the command's output")

	// Refusals.
	for _, tc := range []struct {
		name string
		id   string
		req  driver.ExecRequest
		code string
	}{
		{"no such file", spec.ID, driver.ExecRequest{Command: []string{"/nope"}}, novacron.EInvalid},
		{"a relative command", spec.ID, driver.ExecRequest{Command: []string{"sh"}}, novacron.EInvalid},
		{"no command", spec.ID, driver.ExecRequest{}, novacron.EInvalid},
		{"a relative cwd", spec.ID, driver.ExecRequest{Command: []string{"/bin/true"}, Cwd: "tmp"}, novacron.EInvalid},
		{"a bad env", spec.ID, driver.ExecRequest{Command: []string{"/bin/true"}, Env: map[string]string{"A=B": "x"}}, novacron.EInvalid},
		{"a terminal", spec.ID, driver.ExecRequest{Command: []string{"/bin/true"}, TTY: true}, novacron.EInvalid},
		{"an unknown guest", "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", driver.ExecRequest{Command: []string{"/bin/true"}}, novacron.ENotFound},
	} {
		res, err := d.Exec(ctx, tc.id, tc.req)
		if novacron.ErrorCode(err) != tc.code {
			t.Errorf("%s: %+v %v, want %s", tc.name, res, err, tc.code)
		}
	}
	_, err = d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"/nope"}})
	if msg := novacron.ErrorMessage(err); !strings.Contains(msg, "/nope") || strings.Contains(msg, "level=") {
		t.Errorf("the error of a missing command: %q", msg)
	}
}

// readUntil reads s until its output holds want.
func readUntil(t *testing.T, s io.Reader, out *strings.Builder, want string) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		ch := make(chan result, 1)
		go func() {
			b := make([]byte, 4096)
			n, err := s.Read(b)
			ch <- result{b[:n], err}
		}()
		select {
		case r := <-ch:
			out.Write(r.b)
			if r.err != nil {
				t.Fatalf("read until %q: %v (output %q)", want, r.err, out.String())
			}
		case <-deadline:
			t.Fatalf("no %q in %q", want, out.String())
		}
	}
}

// TestExecTerminal: a shell on a terminal of the container (tty prints
// /dev/pts/N), its size set at the start and by Resize, its exit code.
func TestExecTerminal(t *testing.T) {
	ctx, d, spec := execWorld(t)
	s, err := d.ExecInteractive(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sh"}, TTY: true, Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out strings.Builder
	if _, err := io.WriteString(s, "busybox tty; busybox stty size; echo A=$A\n"); err != nil {
		t.Fatal(err)
	}
	readUntil(t, s, &out, "A=from-config")
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "30 100") {
		t.Errorf("terminal: %q", out.String())
	}
	if err := s.Resize(132, 50); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	io.WriteString(s, "busybox stty size; echo do''ne\n")
	readUntil(t, s, &out, "done")
	if !strings.Contains(out.String(), "50 132") {
		t.Errorf("after Resize: %q", out.String())
	}
	io.WriteString(s, "exit 5\n")
	code, err := s.Wait(ctx)
	if err != nil || code != 5 {
		t.Errorf("Wait = %d, %v; want 5", code, err)
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		t.Errorf("the output after the end: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

// TestExecPipes: an interactive command without a terminal reads what is
// written until its input is closed; stdout and stderr come as one stream.
func TestExecPipes(t *testing.T) {
	ctx, d, spec := execWorld(t)
	s, err := d.ExecInteractive(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sh", "-c", "cat; echo bye >&2; exit 4"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Resize(10, 10); err != nil {
		t.Errorf("Resize without a terminal: %v", err)
	}
	io.WriteString(s, "one\n")
	var out strings.Builder
	readUntil(t, s, &out, "one\n")
	if err := s.CloseInput(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(s)
	if err != nil || string(rest) != "bye\n" {
		t.Errorf("the rest: %q %v", rest, err)
	}
	if code, err := s.Wait(ctx); err != nil || code != 4 {
		t.Errorf("Wait = %d, %v", code, err)
	}
}

// TestExecState: a paused or stopped container runs no command.
func TestExecState(t *testing.T) {
	ctx, d, spec := execWorld(t)
	if res, err := d.Exec(ctx, spec.ID, shExec("exit 0")); err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec: %+v %v", res, err)
	}
	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, spec.ID, shExec("true")); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("Exec in a paused container: %v", err)
	}
	if _, err := d.ExecInteractive(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sh"}, TTY: true}); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("ExecInteractive in a paused container: %v", err)
	}
	if err := d.Resume(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if res, err := d.Exec(ctx, spec.ID, shExec("exit 0")); err != nil || res.ExitCode != 0 {
		t.Errorf("after Resume: %+v %v", res, err)
	}
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, spec.ID, shExec("true")); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("Exec in a stopped container: %v", err)
	}
}

// containerProcs lists the pids in the container's cgroup.
func containerProcs(t *testing.T, initPID int) []string {
	t.Helper()
	return strings.Fields(cgroupFile(t, initPID, "pids", "cgroup.procs", "cgroup.procs"))
}

// waitProcs waits until the container's cgroup holds n processes.
func waitProcs(t *testing.T, initPID, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		procs := containerProcs(t, initPID)
		if len(procs) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d processes in the container (%v), want %d", what, len(procs), procs, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExecCancel: the end of the context, or closing an interactive
// session, kills the command and what it started.
func TestExecCancel(t *testing.T) {
	ctx, d, spec := execWorld(t)
	st, err := d.Status(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitProcs(t, st.PID, 1, "before")

	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var execErr error
	wg.Go(func() {
		_, execErr = d.Exec(cctx, spec.ID, shExec(`sleep 1000 & sleep 1000`))
	})
	waitProcs(t, st.PID, 3, "the command runs")
	t0 := time.Now()
	cancel()
	wg.Wait()
	if !errors.Is(execErr, context.Canceled) {
		t.Errorf("a cancelled Exec: %v", execErr)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("the cancel took %s", took)
	}
	waitProcs(t, st.PID, 1, "after the cancel")

	s, err := d.ExecInteractive(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sh"}, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	// The quotes keep the terminal's echo of the typed line from matching;
	// line ends vary with when the shell's line editor takes over.
	io.WriteString(s, "sleep 1000 &\necho sta''rted\n")
	var out strings.Builder
	readUntil(t, s, &out, "started")
	waitProcs(t, st.PID, 3, "the shell and its job")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitProcs(t, st.PID, 1, "after Close")

	// A session whose context ends is killed as well.
	cctx, cancel = context.WithCancel(ctx)
	s, err = d.ExecInteractive(cctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitProcs(t, st.PID, 2, "the sleep")
	cancel()
	if code, err := s.Wait(ctx); err != nil || code != 137 {
		t.Errorf("Wait after the cancel: %d %v", code, err)
	}
	waitProcs(t, st.PID, 1, "after the context ended")
}
