package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The files of a guest directory Dir/<id>/.
const (
	specFile = "spec.json" // the driver.Spec the guest was created or started with
	workDir  = "work"      // the guest's working directory, owned by its uid
	logsDir  = "logs"      // output.log and its rotated files
	sockFile = "shim.sock" // the shim's control socket (0600)
	pidFile  = "shim.pid"  // the shim's pid; the shim holds a lock on it while it lives
	exitFile = "exit.json" // how the guest ended, written by the shim
	shimLog  = "shim.log"  // the shim's own log
)

// lockPidFile takes the shim's lock on its pid file and writes pid into it.
// The lock is an open file description lock: it dies with the shim, whoever
// its parent is, and a zombie shim no longer holds it. It retries for a
// moment, since a driver probing the lock holds it briefly.
func lockPidFile(path string, pid int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	deadline := time.Now().Add(2 * time.Second)
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
				return nil, fmt.Errorf("another shim holds %s", path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// shimAlive reports whether a shim holds the lock on the pid file at path,
// without taking it.
func shimAlive(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		// No OFD locks here: fall back on the pid, zombies counting as dead.
		b, rerr := os.ReadFile(path)
		if rerr != nil {
			return false, err
		}
		pid, _ := strconv.Atoi(string(bytes.TrimSpace(b)))
		return pid > 0 && pidAlive(pid), nil
	}
	return lk.Type != unix.F_UNLCK, nil
}

// pidAlive reports whether process pid exists and is not a zombie (an
// orphaned zombie lingers until PID 1 reaps it, and kill -0 succeeds on it).
func pidAlive(pid int) bool {
	st, ok := procState(pid)
	return ok && st != 'Z' && st != 'X'
}

// procState returns the state letter of /proc/PID/stat.
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStatState(b)
}

// parseStatState extracts the state from /proc/PID/stat: the field after
// the command, which is in parentheses and may itself hold ") ".
func parseStatState(b []byte) (byte, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// closeInheritedFDs closes the descriptors above stderr that this process
// inherited (the ones without close-on-exec: Go opens all of its own with
// it), except keep. A shim must not hold, nor hand its guest, what the
// agent inherited from its own parent.
func closeInheritedFDs(keep ...int) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 || slices.Contains(keep, fd) {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		unix.Close(fd)
	}
}

// inheritedPipe reports whether fd is a pipe this process inherited (open
// without close-on-exec): the ones its parent handed it, never a file the
// Go runtime opened.
func inheritedPipe(fd int) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC != 0 {
		return false
	}
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}
