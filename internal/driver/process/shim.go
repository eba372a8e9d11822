package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/atomicfile"
	"github.com/novacron/novacron/internal/driver"
)

// RunShim runs the shim, the per-guest supervisor, with the arguments that
// follow the shim command on the command line:
//
//	run [--cgroup-parent P] [--log-max-bytes N] [--log-files N] [--pids-max N]
//	    [--runc PATH --runc-root DIR] DIR
//	init
//
// "run" supervises the guest of the guest directory DIR until it exits:
// it creates the guest's cgroup, starts the guest through the init stage,
// logs its output, serves the control socket and records the exit in
// exit.json. "init" is that second stage, run as the guest's first process:
// it joins the cgroup, drops privileges and execs the guest's command.
//
// With --runc the guest is an OCI container: the shim runs "runc run" on
// the bundle DIR/bundle (whose config puts the container in the cgroup
// P/<id>, which the shim then controls as its own), and runc's exit status
// is the container's.
//
// The shim must be started the way the driver does it: the program's own
// command line ending with these arguments (the init stage is the same
// command line with "init"), and a ready pipe on fd 3. Cancelling ctx (the
// shim got SIGTERM or SIGINT) stops the guest gracefully.
func RunShim(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("shim: want run or init")
	}
	// The command line up to our arguments is how we were run: the init
	// stage is run the same way.
	if len(os.Args) < len(args) || !slices.Equal(os.Args[len(os.Args)-len(args):], args) {
		return errors.New("shim: arguments are not the end of the command line")
	}
	prefix := slices.Clone(os.Args[:len(os.Args)-len(args)])
	switch args[0] {
	case "run":
		return runShim(ctx, prefix, args[1:])
	case "init":
		return runInit()
	}
	return fmt.Errorf("shim: unknown stage %q", args[0])
}

// shim supervises one guest.
type shim struct {
	dir       string
	parent    string
	logMax    int64
	logFiles  int
	pidsMax   int64
	initCmd   []string
	log       *slog.Logger
	spec      driver.Spec
	cfg       guestConfig
	cg        guestCgroup
	out       *rotatingLog
	outR      *os.File
	outDone   chan struct{}
	cmd       *exec.Cmd
	pid       int
	startedAt time.Time
	oomBefore uint64

	done chan struct{} // closed once exit.json is written
	exit exitRecord

	// runc, when set, runs the guest as an OCI container.
	runc *runcGuest
}

func runShim(ctx context.Context, prefix, args []string) error {
	s := &shim{initCmd: append(prefix, "init"), done: make(chan struct{}), outDone: make(chan struct{})}
	fs := flag.NewFlagSet("shim run", flag.ContinueOnError)
	fs.StringVar(&s.parent, "cgroup-parent", "novacron", "cgroup parent")
	fs.Int64Var(&s.logMax, "log-max-bytes", 8<<20, "size cap of the output log")
	fs.IntVar(&s.logFiles, "log-files", 3, "rotated output logs kept")
	fs.Int64Var(&s.pidsMax, "pids-max", 4096, "process limit (0: none)")
	runcPath := fs.String("runc", "", "run the guest as an OCI container with this runc")
	runcRoot := fs.String("runc-root", "", "runc's state directory (with --runc)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*runcPath == "") != (*runcRoot == "") {
		return errors.New("shim run: --runc and --runc-root go together")
	}
	if fs.NArg() != 1 || !filepath.IsAbs(fs.Arg(0)) {
		return errors.New("shim run: want the absolute guest directory")
	}
	s.dir = filepath.Clean(fs.Arg(0))
	if err := validCgroupParent(s.parent); err != nil {
		return err
	}
	if *runcPath != "" {
		s.runc = newRuncGuest(*runcPath, *runcRoot, filepath.Join(s.dir, BundleDir))
	}
	s.log = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("shim", os.Getpid(), "guest", filepath.Base(s.dir))

	// fd 3 is the driver's ready pipe; keep it from the guest.
	var ready *os.File
	if inheritedPipe(3) {
		syscall.CloseOnExec(3)
		ready = os.NewFile(3, "ready")
	}
	closeInheritedFDs()
	report := func(m readyMsg) {
		if ready == nil {
			return
		}
		_ = json.NewEncoder(ready).Encode(m)
		ready.Close()
		ready = nil
	}

	lock, err := lockPidFile(filepath.Join(s.dir, pidFile), os.Getpid())
	if err != nil {
		report(readyMsg{Error: err.Error()})
		return err
	}
	defer lock.Close()

	ln, err := s.start()
	if err != nil {
		s.log.Error("start failed", "err", err)
		var ie *initError
		if errors.As(err, &ie) {
			report(readyMsg{Error: ie.Message, Field: ie.Field, User: ie.User})
		} else {
			report(readyMsg{Error: err.Error()})
		}
		return err
	}
	s.log.Info("guest started", "pid", s.pid)
	report(readyMsg{PID: s.pid, StartedAt: s.startedAt})

	go s.wait()
	stopOnCancel := context.AfterFunc(ctx, func() {
		s.log.Info("shim signalled: stopping the guest")
		s.stop(10*time.Second, false)
	})
	defer stopOnCancel()
	s.serve(ln)
	s.log.Info("guest exited", "code", s.exit.ExitCode, "reason", s.exit.Reason)
	return nil
}

func (e *initError) Error() string { return e.Message }

// start prepares and starts the guest; once it returns, the guest runs.
func (s *shim) start() (_ net.Listener, err error) {
	b, err := os.ReadFile(filepath.Join(s.dir, specFile))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.spec); err != nil {
		return nil, fmt.Errorf("%s: %w", specFile, err)
	}
	if s.runc == nil {
		if s.cfg, err = parseConfig(s.spec.Config); err != nil {
			return nil, &initError{Message: novacron.ErrorMessage(err), User: true}
		}
	}
	if err := os.Remove(filepath.Join(s.dir, exitFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	if s.out, err = openLog(logPath(s.dir), s.logMax, s.logFiles); err != nil {
		return nil, fmt.Errorf("output log: %w", err)
	}
	undo = append(undo, func() { s.out.Close() })

	if s.runc == nil {
		if s.cg, err = createCgroup(s.parent, s.spec.ID, guestLimits(s.spec.CPUs, s.spec.MemoryMB, s.pidsMax)); err != nil {
			return nil, err
		}
		undo = append(undo, func() {
			_ = killCgroup(s.cg, 5*time.Second)
			_ = s.cg.Delete()
		})
		if s.oomBefore, err = s.cg.OOMKills(); err != nil {
			s.log.Warn("cannot read the OOM counter", "err", err)
		}
	}

	sock := filepath.Join(s.dir, sockFile)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { ln.Close() })
	if err := os.Chmod(sock, 0o600); err != nil {
		return nil, err
	}

	if s.runc != nil {
		if err := s.startRunc(); err != nil {
			return nil, err
		}
		return ln, nil
	}
	if err := s.startInit(); err != nil {
		return nil, err
	}
	return ln, nil
}

// startInit starts the init stage, hands it its parameters and waits until
// it has exec'd the guest's command or failed to.
func (s *shim) startInit() error {
	paramsR, paramsW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer paramsW.Close()
	defer paramsR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer errR.Close()
	defer errW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer outW.Close()

	s.cmd = &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       s.initCmd,
		Env:        []string{},
		Dir:        "/",
		Stdout:     outW,
		Stderr:     outW,
		ExtraFiles: []*os.File{paramsR, errW},
		// The guest leads its own session and process group, so a stop
		// reaches its children.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := s.cmd.Start(); err != nil {
		outR.Close()
		return fmt.Errorf("start init: %w", err)
	}
	paramsR.Close()
	errW.Close()
	outW.Close()
	s.outR = outR
	go func() {
		if err := copyToLog(s.out, outR); err != nil {
			s.log.Warn("output log", "err", err)
		}
		close(s.outDone)
	}()

	work := filepath.Join(s.dir, workDir)
	p := initParams{
		ShimPID:    os.Getpid(),
		ProcsFiles: s.cg.ProcsFiles(),
		Work:       work,
		Cwd:        s.cfg.Cwd,
		UID:        s.spec.UID,
		GID:        s.spec.GID,
		Argv:       s.cfg.Command,
		Env:        guestEnv(s.cfg.Env, work),
	}
	if err := json.NewEncoder(paramsW).Encode(p); err != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		return fmt.Errorf("init parameters: %w", err)
	}
	paramsW.Close()

	msg, err := io.ReadAll(errR)
	if err != nil || len(msg) > 0 {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.closeOutput()
		var ie initError
		if err == nil && json.Unmarshal(msg, &ie) == nil && ie.Message != "" {
			return &ie
		}
		return fmt.Errorf("init stage failed: %v %q", err, msg)
	}
	s.pid = s.cmd.Process.Pid
	s.startedAt = time.Now().UTC()
	return nil
}

// closeOutput waits a moment for the output pipe to drain, then closes it
// and the log.
func (s *shim) closeOutput() {
	select {
	case <-s.outDone:
	case <-time.After(2 * time.Second):
		s.outR.Close()
		<-s.outDone
	}
	s.outR.Close()
	s.out.Close()
}

// wait reaps the guest, kills what it left in its cgroup and records its
// exit.
func (s *shim) wait() {
	err := s.cmd.Wait()
	exitedAt := time.Now().UTC()
	var ws syscall.WaitStatus
	if ps := s.cmd.ProcessState; ps != nil {
		ws, _ = ps.Sys().(syscall.WaitStatus)
	} else {
		s.log.Error("wait", "err", err)
	}
	if err := killCgroup(s.cg, 5*time.Second); err != nil {
		s.log.Error("kill the guest's remaining processes", "err", err)
	}
	if s.runc != nil {
		s.runc.delete(s.spec.ID, s.log)
	}
	s.closeOutput()
	code, sig := exitStatus(ws)
	if s.runc != nil && sig == 0 && code > 128 && code < 128+65 {
		// runc exits with 128+N when a signal N killed the container.
		sig = code - 128
	}
	oom := false
	if n, err := s.cg.OOMKills(); err == nil && n > s.oomBefore {
		oom = true
	}
	s.exit = exitRecord{
		ExitCode: code, Signal: sig, OOM: oom, Reason: exitReason(code, sig, oom),
		PID: s.pid, StartedAt: s.startedAt, ExitedAt: exitedAt,
	}
	b, _ := json.Marshal(s.exit)
	if err := atomicfile.Write(filepath.Join(s.dir, exitFile), append(b, '\n'), 0o600); err != nil {
		s.log.Error("record the exit", "err", err)
	}
	close(s.done)
}

// stop ends the guest: SIGTERM to its process group, then SIGKILL to
// everything in its cgroup after timeout (at once when force or timeout is
// not positive).
func (s *shim) stop(timeout time.Duration, force bool) {
	select {
	case <-s.done:
		return
	default:
	}
	if force || timeout <= 0 {
		s.kill()
		return
	}
	s.signal(syscall.SIGTERM)
	// A frozen guest handles its SIGTERM only once thawed.
	if f, _ := s.cg.Frozen(); f {
		_ = s.cg.Thaw()
	}
	t := time.AfterFunc(timeout, s.kill)
	go func() {
		<-s.done
		t.Stop()
	}()
}

// signal sends sig to the guest: to its process group, or to a
// container's init (which, as a PID namespace's init, ignores what it has
// no handler for, as under any container runtime).
func (s *shim) signal(sig syscall.Signal) {
	if s.runc != nil {
		_ = syscall.Kill(s.pid, sig)
		return
	}
	_ = syscall.Kill(-s.pid, sig)
}

func (s *shim) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.signal(syscall.SIGKILL)
	if pids, err := s.cg.Pids(); err == nil {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if f, _ := s.cg.Frozen(); f {
		_ = s.cg.Thaw()
	}
}

// serve answers the control socket until the guest has exited and the
// answers in flight are sent.
func (s *shim) serve(ln net.Listener) {
	var wg sync.WaitGroup
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.handle(conn)
			}()
		}
	}()
	<-s.done
	ln.Close()
	_ = os.Remove(filepath.Join(s.dir, sockFile))
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
	}
}

func (s *shim) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, 4096)).ReadBytes('\n')
	if err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	var req request
	resp := response{OK: true}
	if err := json.Unmarshal(line, &req); err != nil {
		resp = refuse(novacron.EInvalid, "bad request")
	} else {
		resp = s.answer(req)
	}
	resp.Version = protocolVersion
	b, _ := json.Marshal(resp)
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write(append(b, '\n'))
}

func refuse(code, msg string) response { return response{Code: code, Error: msg} }

func (s *shim) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *shim) answer(req request) response {
	switch req.Op {
	case "status":
		if s.exited() {
			return response{OK: true, State: driver.GuestExited, PID: s.pid, StartedAt: s.startedAt, Exit: &s.exit}
		}
		state := driver.GuestRunning
		if f, err := s.cg.Frozen(); err != nil {
			// A container's runtime removes its cgroup as it ends, a
			// moment before the shim sees the end.
			select {
			case <-s.done:
				return response{OK: true, State: driver.GuestExited, PID: s.pid, StartedAt: s.startedAt, Exit: &s.exit}
			case <-time.After(2 * time.Second):
				return refuse(novacron.EOperationFailed, "cannot read the guest's freezer state")
			}
		} else if f {
			state = driver.GuestPaused
		}
		return response{OK: true, State: state, PID: s.pid, StartedAt: s.startedAt}
	case "stop":
		s.stop(time.Duration(req.TimeoutMS)*time.Millisecond, req.Force)
		<-s.done
		return response{OK: true, State: driver.GuestExited, PID: s.pid, StartedAt: s.startedAt, Exit: &s.exit}
	case "pause", "resume":
		if s.exited() {
			return refuse(novacron.EInvalidState, "the guest is not running")
		}
		f, err := s.cg.Frozen()
		if err != nil {
			return refuse(novacron.EOperationFailed, "cannot read the guest's freezer state")
		}
		if req.Op == "pause" {
			if f {
				return refuse(novacron.EInvalidState, "the guest is already paused")
			}
			if err := s.cg.Freeze(); err != nil {
				s.log.Error("freeze", "err", err)
				_ = s.cg.Thaw()
				return refuse(novacron.EOperationFailed, "cannot freeze the guest")
			}
			return response{OK: true, State: driver.GuestPaused, PID: s.pid, StartedAt: s.startedAt}
		}
		if !f {
			return refuse(novacron.EInvalidState, "the guest is not paused")
		}
		if err := s.cg.Thaw(); err != nil {
			s.log.Error("thaw", "err", err)
			return refuse(novacron.EOperationFailed, "cannot thaw the guest")
		}
		return response{OK: true, State: driver.GuestRunning, PID: s.pid, StartedAt: s.startedAt}
	}
	return refuse(novacron.EInvalid, "unknown op")
}
