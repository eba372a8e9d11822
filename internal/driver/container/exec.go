package container

// Commands run in a running container ("runc exec"), as the container's own
// process runs: the same uid and gid, environment (plus the request's),
// working directory (unless the request names one), rlimits, no new
// privileges and no capabilities, in the container's namespaces and cgroup.
//
// runc runs in the foreground and is the command's parent, so its exit
// status is the command's. (runc takes a --console-socket only with
// --detach, and a detached command is reaped by whoever adopts it, not by
// the agent: its exit code would be lost.) A command with a terminal gets
// the terminal runc makes for it in the container; runc copies it to and
// from a pseudo-terminal of the agent's, which is runc's controlling
// terminal: resizing that one sends runc the SIGWINCH on which it resizes
// the container's. runc's own errors go to a log of its own, never into the
// command's output.
//
// runc makes the command the leader of a new session. Killing a command
// (its context ended, its timeout passed, its session closed) kills every
// process of that session in the container's cgroup: the command and what
// it started, unless that made a session of its own. runc copies the
// command's output until nothing holds it: what the command left in its
// session is killed too when it still holds it a moment after the command
// ended (reapOutput), so that the command's end is not held up by it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/guestcmd"
	"github.com/novacron/novacron/internal/driver/process"
)

var _ driver.Execer = (*Driver)(nil)

const (
	// maxExecs bounds the commands running at once in one container.
	maxExecs = 16
	// execOutputGrace is how long the output of a command that has ended
	// is still read: what it started in the background may hold its
	// stdout, and is not waited for.
	execOutputGrace = 500 * time.Millisecond
	// execStartTimeout bounds how long runc takes to start a command.
	execStartTimeout = 30 * time.Second
	// execKillTimeout is how long a killed command's runc has to end
	// before it is killed itself.
	execKillTimeout = 10 * time.Second
	// Default size and type of a terminal.
	defaultCols, defaultRows = 80, 24
	defaultTerm              = "xterm"
)

// execProcess returns the OCI process of a command exec'd in a container
// whose own process is base: base's user, environment (with req.Env on
// top, and TERM=xterm on a terminal unless set), working directory (unless req.Cwd is set), rlimits and security
// labels; the request's arguments and terminal; no new privileges and no
// capabilities whatever base says. It does no I/O. A container whose own
// process is root is refused: guests never are.
func execProcess(base *specs.Process, req driver.ExecRequest) (*specs.Process, error) {
	if base == nil {
		return nil, errors.New("the container's config has no process")
	}
	if base.User.UID == 0 || base.User.GID == 0 {
		return nil, errors.New("the container's process runs as root")
	}
	cwd := base.Cwd
	if req.Cwd != "" {
		c, ok := guestcmd.CleanAbsolute(req.Cwd)
		if !ok {
			return nil, novacron.FieldError("cwd", "must be an absolute path inside the container, without '..', at most %d bytes", guestcmd.MaxPathBytes)
		}
		cwd = c
	}
	if cwd == "" {
		cwd = "/"
	}
	env := execEnv(base.Env, req.Env)
	if req.TTY && !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "TERM=") }) {
		env = append(env, "TERM="+defaultTerm)
		slices.Sort(env)
	}
	return &specs.Process{
		Terminal: req.TTY,
		User: specs.User{UID: base.User.UID, GID: base.User.GID, Umask: base.User.Umask,
			AdditionalGids: slices.Clone(base.User.AdditionalGids)},
		Args: slices.Clone(req.Command),
		Env:  env,
		Cwd:  cwd,
		Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{}, Effective: []string{}, Inheritable: []string{},
			Permitted: []string{}, Ambient: []string{},
		},
		Rlimits:         slices.Clone(base.Rlimits),
		NoNewPrivileges: true,
		ApparmorProfile: base.ApparmorProfile,
		SelinuxLabel:    base.SelinuxLabel,
		OOMScoreAdj:     base.OOMScoreAdj,
	}, nil
}

// execEnv is the NAME=value list base with env's variables added or
// replaced, sorted by name.
func execEnv(base []string, env map[string]string) []string {
	all := map[string]string{}
	for _, e := range base {
		k, v, _ := strings.Cut(e, "=")
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	out := make([]string, 0, len(all))
	for k, v := range all {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// Exec runs a command in the running container to its end: its stdout and
// stderr kept up to req.MaxOutput bytes each, its stdin req.Stdin, killed
// when req.Timeout passes (the result says so) or ctx ends (ctx's error).
func (d *Driver) Exec(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecResult, error) {
	if err := driver.CheckExec(req); err != nil {
		return driver.ExecResult{}, err
	}
	if req.TTY {
		return driver.ExecResult{}, novacron.FieldError("tty", "a command with a terminal is interactive")
	}
	timeout, max := req.Timeout, req.MaxOutput
	if timeout == 0 {
		timeout = driver.DefaultExecTimeout
	}
	if max == 0 {
		max = driver.DefaultExecOutput
	}
	var pipes closers
	defer pipes.close()
	outR, outW, err := pipes.pipe()
	if err != nil {
		return driver.ExecResult{}, err
	}
	errR, errW, err := pipes.pipe()
	if err != nil {
		return driver.ExecResult{}, err
	}
	var inR, inW *os.File
	if len(req.Stdin) > 0 {
		if inR, inW, err = pipes.pipe(); err != nil {
			return driver.ExecResult{}, err
		}
	}
	run, err := d.startExec(ctx, id, req, func(cmd *exec.Cmd) {
		if inR != nil {
			cmd.Stdin = inR
		}
		cmd.Stdout, cmd.Stderr = outW, errW
	}, outW, errW, inR)
	if err != nil {
		return driver.ExecResult{}, err
	}
	defer run.release()

	var wg sync.WaitGroup
	if inW != nil {
		wg.Go(func() {
			// A command that does not read its input ends this
			// write with EPIPE once it is gone.
			_, _ = inW.Write(req.Stdin)
			inW.Close()
		})
	}
	stdout, stderr := &capped{max: max}, &capped{max: max}
	wg.Go(func() { stdout.readFrom(outR) })
	wg.Go(func() { stderr.readFrom(errR) })

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var res driver.ExecResult
	select {
	case <-run.done:
	case <-timer.C:
		res.TimedOut = true
		run.kill()
	case <-ctx.Done():
		run.kill()
	}
	<-run.done
	deadline := time.Now().Add(execOutputGrace)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	if inW != nil {
		inW.Close() // ends a write the command never read
	}
	wg.Wait()
	if ctx.Err() != nil && !res.TimedOut {
		return driver.ExecResult{}, ctx.Err()
	}
	res.ExitCode = run.exitCode()
	res.Stdout, res.StdoutTruncated = stdout.buf, stdout.truncated
	res.Stderr, res.StderrTruncated = stderr.buf, stderr.truncated
	d.log.Debug("exec ended", "guest", id, "exit_code", res.ExitCode, "timed_out", res.TimedOut)
	return res, nil
}

// ExecInteractive starts a command in the running container, with a
// terminal (req.TTY) or with pipes (its stdout and stderr one stream), and
// returns it running. The end of ctx kills it.
func (d *Driver) ExecInteractive(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecSession, error) {
	if err := driver.CheckExec(req); err != nil {
		return nil, err
	}
	if len(req.Stdin) > 0 {
		return nil, novacron.FieldError("stdin", "an interactive command reads what is written to it")
	}
	var files closers
	defer files.close()
	s := &execSession{tty: req.TTY}
	var run *execRun
	if req.TTY {
		master, slave, err := openPty()
		if err != nil {
			return nil, fmt.Errorf("container: exec: %w", err)
		}
		files.add(master)
		files.add(slave)
		cols, rows := req.Cols, req.Rows
		if cols == 0 || rows == 0 {
			cols, rows = defaultCols, defaultRows
		}
		if err := setWinsize(master, cols, rows); err != nil {
			return nil, fmt.Errorf("container: exec: %w", err)
		}
		run, err = d.startExec(ctx, id, req, func(cmd *exec.Cmd) {
			cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
			// The pseudo-terminal becomes runc's controlling
			// terminal: its resizes reach runc as SIGWINCH.
			cmd.SysProcAttr.Setctty = true
			cmd.SysProcAttr.Ctty = 0
		}, slave)
		if err != nil {
			return nil, err
		}
		s.out, s.in = master, master
	} else {
		inR, inW, err := files.pipe()
		if err != nil {
			return nil, err
		}
		outR, outW, err := files.pipe()
		if err != nil {
			return nil, err
		}
		run, err = d.startExec(ctx, id, req, func(cmd *exec.Cmd) {
			cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
		}, inR, outW)
		if err != nil {
			return nil, err
		}
		s.out, s.in = outR, inW
	}
	files.keep() // the session's now
	s.run = run
	s.stop = context.AfterFunc(ctx, run.kill)
	go func() {
		<-run.done
		_ = s.out.SetReadDeadline(time.Now().Add(execOutputGrace))
	}()
	return s, nil
}

// execSession is a command running interactively.
type execSession struct {
	run     *execRun
	tty     bool
	out, in *os.File // the terminal's master, or the pipes' ends
	stop    func() bool

	inOnce, closeOnce sync.Once
}

// Read reads the command's output; io.EOF once it ended (the terminal's
// other side closed, or its output pipe did, or nothing came within
// execOutputGrace of its end).
func (s *execSession) Read(p []byte) (int, error) {
	n, err := s.out.Read(p)
	if err != nil && (errors.Is(err, syscall.EIO) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed)) {
		err = io.EOF
	}
	return n, err
}

func (s *execSession) Write(p []byte) (int, error) { return s.in.Write(p) }

func (s *execSession) CloseInput() error {
	if s.tty {
		return nil
	}
	var err error
	s.inOnce.Do(func() { err = s.in.Close() })
	return err
}

func (s *execSession) Resize(cols, rows uint16) error {
	if !s.tty || cols == 0 || rows == 0 {
		return nil
	}
	return setWinsize(s.out, cols, rows)
}

func (s *execSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.run.done:
		return s.run.exitCode(), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (s *execSession) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.run.kill()
		s.out.Close()
		if !s.tty {
			s.inOnce.Do(func() { s.in.Close() })
		}
		s.run.release()
	})
	return nil
}

// execRun is one "runc exec" of a command.
type execRun struct {
	d      *Driver
	id     string
	cgroup string // the container's cgroup path
	files  []string
	cmd    *exec.Cmd
	pid    int           // the command's (host) pid, its session's id
	done   chan struct{} // closed once runc has ended
	once   sync.Once
}

// startExec checks the request and the container, writes the command's
// process.json and starts runc exec on it, its stdio set by stdio; the
// parent's copies of childFiles are closed once runc has started. It
// returns once the command runs: a command runc could not start (no such
// file) is EInvalid, with runc's reason.
func (d *Driver) startExec(ctx context.Context, id string, req driver.ExecRequest, stdio func(*exec.Cmd), childFiles ...*os.File) (*execRun, error) {
	dir, err := d.execGuestDir(id)
	if err != nil {
		return nil, err
	}
	if err := d.running(ctx, id); err != nil {
		return nil, err
	}
	base, err := readBundleProcess(filepath.Join(dir, process.BundleDir, configFile))
	if err != nil {
		return nil, fmt.Errorf("container: guest %s: %w", id, err)
	}
	p, err := execProcess(base, req)
	if err != nil {
		if novacron.ErrorCode(err) == novacron.EInvalid {
			return nil, err
		}
		return nil, fmt.Errorf("container: guest %s: %w", id, err)
	}
	if !d.execSlot(id, true) {
		return nil, novacron.Errorf(novacron.EConflict, "guest %s already runs %d commands", id, maxExecs)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	base2 := filepath.Join(dir, "exec-"+hex.EncodeToString(rnd[:]))
	r := &execRun{d: d, id: id, cgroup: process.CgroupsPath(d.cfg.CgroupParent, id), done: make(chan struct{}),
		files: []string{base2 + ".json", base2 + ".pid", base2 + ".log"}}
	ok := false
	defer func() {
		if !ok {
			r.release()
		}
	}()
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("container: exec: %w", err)
	}
	if err := os.WriteFile(r.files[0], b, 0o600); err != nil {
		return nil, fmt.Errorf("container: exec: %w", err)
	}
	r.cmd = &exec.Cmd{
		Path: d.cfg.Runc,
		Args: []string{d.cfg.Runc, "--root", d.runc.Root, "--log", r.files[2], "--log-format", "json",
			"exec", "--process", r.files[0], "--pid-file", r.files[1], id},
		Env:         []string{"PATH=" + guestcmd.DefaultPath},
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	stdio(r.cmd)
	err = r.cmd.Start()
	for _, f := range childFiles {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("container: start runc exec: %w", err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.done)
	}()

	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	deadline := time.Now().Add(execStartTimeout)
	for {
		if pid, err := readPidFile(r.files[1]); err == nil {
			r.pid = pid
			break
		}
		select {
		case <-r.done:
			// runc has ended without starting the command; a pid
			// file written just before is a command that ran.
			if pid, err := readPidFile(r.files[1]); err == nil {
				r.pid = pid
				ok = true
				return r, nil
			}
			return nil, d.execFailed(ctx, id, r.files[2])
		case <-ctx.Done():
			r.kill()
			return nil, ctx.Err()
		case <-t.C:
		}
		if time.Now().After(deadline) {
			r.kill()
			return nil, novacron.Errorf(novacron.EOperationFailed, "runc did not start the command within %s", execStartTimeout)
		}
	}
	ok = true
	go r.reapOutput()
	d.log.Debug("exec started", "guest", id, "pid", r.pid, "tty", req.TTY)
	return r, nil
}

// reapOutput kills what the command left in its session once the command
// has ended, when runc has not ended execOutputGrace later: runc copies the
// command's output until no process holds it any more, and a process left
// in the background that does would keep runc, and the exit code, until it
// ends. A daemon that detached (a session of its own) is left alone.
func (r *execRun) reapOutput() {
	if !waitPid(r.pid, r.done) {
		return
	}
	select {
	case <-r.done:
		return
	case <-time.After(execOutputGrace):
	}
	r.d.log.Debug("exec: killing what holds the output of an ended command", "guest", r.id, "pid", r.pid)
	r.kill()
}

// waitPid waits until process pid has ended (or is a zombie), and returns
// true then; or false when done is closed first.
func waitPid(pid int, done <-chan struct{}) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return true
		}
		// No pidfd: watch /proc.
		for {
			if st, ok := procState(pid); !ok || st == 'Z' {
				return true
			}
			select {
			case <-done:
				return false
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	defer unix.Close(fd)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		if n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
			return true
		}
		select {
		case <-done:
			return false
		default:
		}
	}
}

// procState returns the state letter of process pid, false when it is gone.
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// execGuestDir returns the directory of an existing guest.
func (d *Driver) execGuestDir(id string) (string, error) {
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return "", novacron.Errorf(novacron.ENotFound, "guest %s not found", id)
	}
	dir := filepath.Join(d.cfg.Dir, "guests", id)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", novacron.Errorf(novacron.ENotFound, "guest %s not found", id)
		}
		return "", fmt.Errorf("container: %w", err)
	}
	return dir, nil
}

// running checks that the guest runs: a paused or stopped one is
// EInvalidState.
func (d *Driver) running(ctx context.Context, id string) error {
	st, err := d.Status(ctx, id)
	if err != nil {
		return err
	}
	switch st.State {
	case driver.GuestRunning:
		return nil
	case driver.GuestPaused:
		return novacron.Errorf(novacron.EInvalidState, "guest %s is paused: resume it to run commands in it", id)
	}
	return novacron.Errorf(novacron.EInvalidState, "guest %s is not running", id)
}

// execFailed is the error of a runc exec that ended without starting its
// command: the guest stopped or paused meanwhile, or runc could not start
// the command (its own words, from its log).
func (d *Driver) execFailed(ctx context.Context, id, logFile string) error {
	if err := d.running(ctx, id); err != nil {
		return err
	}
	msg := runcLogError(logFile)
	if msg == "" {
		return novacron.Errorf(novacron.EOperationFailed, "runc could not start the command")
	}
	msg = strings.TrimPrefix(msg, "exec failed: ")
	msg = strings.TrimPrefix(msg, "unable to start container process: ")
	return novacron.Errorf(novacron.EInvalid, "cannot run the command: %s", msg)
}

// runcLogError returns the last error runc wrote to its JSON log.
func runcLogError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	msg := ""
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		var e struct{ Level, Msg string }
		if json.Unmarshal(line, &e) == nil && (e.Level == "error" || e.Level == "fatal") {
			msg = e.Msg
		}
	}
	const max = 512
	if len(msg) > max {
		msg = msg[:max]
	}
	return strings.ToValidUTF8(msg, "?")
}

// readBundleProcess reads the process of a bundle's config.json.
func readBundleProcess(path string) (*specs.Process, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s.Process, nil
}

// readPidFile reads a pid file runc wrote.
func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %s", path)
	}
	return pid, nil
}

// execSlot takes (take) or gives back a slot of the guest's running
// commands; taking fails when all maxExecs are taken.
func (d *Driver) execSlot(id string, take bool) bool {
	d.execMu.Lock()
	defer d.execMu.Unlock()
	if d.execs == nil {
		d.execs = map[string]int{}
	}
	if !take {
		if d.execs[id]--; d.execs[id] <= 0 {
			delete(d.execs, id)
		}
		return true
	}
	if d.execs[id] >= maxExecs {
		return false
	}
	d.execs[id]++
	return true
}

// kill kills the command and what it started in its session, and waits
// until runc has ended; runc is killed too when it does not end by itself.
func (r *execRun) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	deadline := time.Now().Add(execKillTimeout)
	for {
		select {
		case <-r.done:
			return
		default:
		}
		pid := r.pid
		if pid == 0 {
			pid, _ = readPidFile(r.files[1])
		}
		if pid > 0 {
			killSession(pid, r.cgroup)
		}
		select {
		case <-r.done:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = r.cmd.Process.Kill()
			<-r.done
			return
		}
	}
}

// exitCode is the exit status of runc, which is its command's (128+signal
// for a command killed by a signal).
func (r *execRun) exitCode() int {
	<-r.done
	ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return r.cmd.ProcessState.ExitCode()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// release removes the run's files and gives its slot back, once.
func (r *execRun) release() {
	r.once.Do(func() {
		for _, f := range r.files {
			_ = os.Remove(f)
		}
		r.d.execSlot(r.id, false)
	})
}

// killSession sends SIGKILL to every process of the session sid that is in
// the cgroup (a path such as "/novacron/<id>"): a pid reused by another
// process since is never killed.
func killSession(sid int, cgroup string) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if s, ok := statSession(b); !ok || s != sid {
			continue
		}
		if cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup"); err != nil || !inCgroup(cg, cgroup) {
			continue
		}
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// statSession returns the session id field of a /proc/<pid>/stat.
func statSession(b []byte) (int, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	// After the command: state ppid pgrp session …
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return 0, false
	}
	s, err := strconv.Atoi(f[3])
	return s, err == nil
}

// inCgroup reports whether a /proc/<pid>/cgroup lists the cgroup path in
// any hierarchy.
func inCgroup(b []byte, path string) bool {
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[2] == path {
			return true
		}
	}
	return false
}

// capped keeps the first max bytes read, and reads (and drops) the rest.
type capped struct {
	max       int
	buf       []byte
	truncated bool
}

func (c *capped) readFrom(r io.Reader) {
	b := make([]byte, 32<<10)
	for {
		n, err := r.Read(b)
		if n > 0 {
			keep := min(n, c.max-len(c.buf))
			c.buf = append(c.buf, b[:keep]...)
			if keep < n {
				c.truncated = true
			}
		}
		if err != nil {
			return
		}
	}
}

// closers closes the files it holds, unless told to keep them.
type closers struct{ files []*os.File }

func (c *closers) add(f *os.File) { c.files = append(c.files, f) }

func (c *closers) pipe() (*os.File, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("container: exec: %w", err)
	}
	c.add(r)
	c.add(w)
	return r, w, nil
}

func (c *closers) keep() { c.files = nil }

func (c *closers) close() {
	for _, f := range c.files {
		f.Close()
	}
}

// openPty opens a new pseudo-terminal of the host: its master, pollable
// (a Read ends when it is closed), and its slave, opened without becoming
// the caller's controlling terminal.
func openPty() (master, slave *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0)
	}
	if err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("pty: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	name := "/dev/pts/" + strconv.Itoa(n)
	slave, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// setWinsize sets the size of the terminal of a pseudo-terminal's master.
func setWinsize(master *os.File, cols, rows uint16) error {
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	}); err != nil {
		return err
	}
	return ierr
}
