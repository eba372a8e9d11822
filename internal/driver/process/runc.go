package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	runc "github.com/containerd/go-runc"
)

// BundleDir is the OCI bundle of a container guest, in its guest directory:
// config.json and the root file system runc runs.
const BundleDir = "bundle"

// containerPidFile is where runc writes the container's init pid.
const containerPidFile = "container.pid"

// CgroupsPath is the cgroup (below each hierarchy's root) a container
// guest's bundle must name as its cgroupsPath: the shim controls it as it
// does a process guest's (freezer, OOM counter, what is left to kill).
func CgroupsPath(parent, id string) string { return cgroupGroup(parent, id) }

// runcGuest is how a shim runs an OCI container with runc.
type runcGuest struct {
	runc   *runc.Runc
	root   string
	bundle string
}

func newRuncGuest(path, root, bundle string) *runcGuest {
	return &runcGuest{runc: &runc.Runc{Command: path, Root: root}, root: root, bundle: bundle}
}

// delete removes runc's record of the container, killing what may be left
// of it; a container runc does not know is fine.
func (g *runcGuest) delete(id string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.runc.Delete(ctx, id, &runc.DeleteOpts{Force: true}); err != nil && !strings.Contains(err.Error(), "does not exist") {
		log.Warn("runc delete", "err", err)
	}
}

// startRunc runs "runc run" on the guest's bundle and returns once the
// container's init runs (runc wrote its pid), or fails with runc's own
// words when runc ends first.
func (s *shim) startRunc() error {
	id := s.spec.ID
	// A container left by a shim that was killed goes first.
	if _, err := os.Stat(filepath.Join(s.runc.root, id)); err == nil {
		s.runc.delete(id, s.log)
	}
	pidPath := filepath.Join(s.dir, containerPidFile)
	if err := os.Remove(pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer outW.Close()
	args := []string{s.runc.runc.Command, "--root", s.runc.root, "run", "--bundle", s.runc.bundle, "--pid-file", pidPath, "--no-new-keyring", id}
	s.cmd = &exec.Cmd{
		Path:   s.runc.runc.Command,
		Args:   args,
		Env:    []string{"PATH=" + defaultPath},
		Dir:    "/",
		Stdout: outW,
		Stderr: outW,
		// runc and its container lead their own session.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if !filepath.IsAbs(s.cmd.Path) {
		if s.cmd.Path, err = exec.LookPath(s.cmd.Path); err != nil {
			outR.Close()
			return fmt.Errorf("runc: %w", err)
		}
	}
	if err := s.cmd.Start(); err != nil {
		outR.Close()
		return fmt.Errorf("start runc: %w", err)
	}
	outW.Close()
	s.outR = outR
	go func() {
		if err := copyToLog(s.out, outR); err != nil {
			s.log.Warn("output log", "err", err)
		}
		close(s.outDone)
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if pid, err := readPidFile(pidPath); err == nil && !runcInit(pid) {
			if s.cg, err = loadCgroup(s.parent, id); err != nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				_ = s.cmd.Wait()
				s.closeOutput()
				s.runc.delete(id, s.log)
				return fmt.Errorf("the container's cgroup: %w (does the bundle name %s?)", err, CgroupsPath(s.parent, id))
			}
			if s.oomBefore, err = s.cg.OOMKills(); err != nil {
				s.log.Warn("cannot read the OOM counter", "err", err)
			}
			s.pid = pid
			s.startedAt = time.Now().UTC()
			return nil
		}
		if st, ok := procState(s.cmd.Process.Pid); !ok || st == 'Z' || time.Now().After(deadline) {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
			s.closeOutput()
			s.runc.delete(id, s.log)
			msg, _ := readLogTail(logPath(s.dir), s.logFiles, 5)
			return &initError{Message: "runc could not start the container: " + string(bytes.TrimSpace(msg)), User: true}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runcInit reports whether pid is still runc's init stage, not yet the
// container's command: a container is started once its command runs (a
// pause before then could catch runc setting it up).
func runcInit(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false // gone: its end is the shim's to see
	}
	args := bytes.Split(b, []byte{0})
	return len(args) >= 2 && filepath.Base(string(args[0])) == "runc" && string(args[1]) == "init"
}

// readPidFile reads a pid file runc wrote.
func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %s", path)
	}
	return pid, nil
}
