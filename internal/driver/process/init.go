package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// runInit is the init stage: the guest's first process, started by the
// shim in a new session with the parameters on fd 3 and an error pipe on
// fd 4. It joins the guest's cgroup, drops to the guest's uid and gid with
// no new privileges, and execs the guest's command. It returns only when
// that fails, after telling the shim why on fd 4.
func runInit() error {
	// No new privileges and the parent-death signal are per thread: set
	// them on the thread that execs.
	runtime.LockOSThread()

	// Signals the agent ignored would stay ignored across exec: handling
	// them here makes exec reset them to their defaults.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE, syscall.SIGQUIT)

	if !inheritedPipe(3) || !inheritedPipe(4) {
		return errors.New("shim init: no parameter and error pipes: run by the shim only")
	}
	syscall.CloseOnExec(4)
	closeInheritedFDs(3)
	errPipe := os.NewFile(4, "init-errors")
	fail := func(e initError) error {
		_ = json.NewEncoder(errPipe).Encode(e)
		return &e
	}

	var p initParams
	params := os.NewFile(3, "init-params")
	err := json.NewDecoder(params).Decode(&p)
	params.Close()
	if err != nil {
		return fail(initError{Message: "init parameters: " + err.Error()})
	}
	if len(p.Argv) == 0 {
		return fail(initError{Message: "init parameters: no command"})
	}

	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, f := range p.ProcsFiles {
		if err := os.WriteFile(f, pid, 0); err != nil {
			return fail(initError{Message: "join cgroup: " + err.Error()})
		}
	}
	// The work directory is entered as root (its parents may be closed to
	// the guest); cwd below it is entered as the guest, so a symlink the
	// guest planted leads nowhere it could not go anyway.
	if err := syscall.Chdir(p.Work); err != nil {
		return fail(initError{Message: "work directory: " + err.Error()})
	}
	if err := syscall.Setgroups([]int{}); err != nil {
		return fail(initError{Message: "setgroups: " + err.Error()})
	}
	if err := syscall.Setgid(p.GID); err != nil {
		return fail(initError{Message: "setgid: " + err.Error()})
	}
	if err := syscall.Setuid(p.UID); err != nil {
		return fail(initError{Message: "setuid: " + err.Error()})
	}
	// Changing ids clears the parent-death signal: set it after. If the
	// shim dies, the guest dies with it rather than run unsupervised.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fail(initError{Message: "parent-death signal: " + err.Error()})
	}
	if os.Getppid() != p.ShimPID {
		return fail(initError{Message: "the shim is gone"})
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail(initError{Message: "no new privileges: " + err.Error()})
	}
	if p.Cwd != "" {
		if err := os.MkdirAll(p.Cwd, 0o700); err != nil {
			return fail(initError{Field: "config.cwd", User: true, Message: "config.cwd: " + p.Cwd + ": " + pathErrText(err)})
		}
		if err := syscall.Chdir(p.Cwd); err != nil {
			return fail(initError{Field: "config.cwd", User: true, Message: "config.cwd: " + p.Cwd + ": " + pathErrText(err)})
		}
	}
	err = syscall.Exec(p.Argv[0], p.Argv, p.Env)
	return fail(initError{Field: "config.command", User: true, Message: fmt.Sprintf("config.command: %s: %s", p.Argv[0], pathErrText(err))})
}

// pathErrText is the reason of a path error without the path ("no such
// file or directory"): the message names the path the user gave, never a
// path of the node.
func pathErrText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return "failed"
}
