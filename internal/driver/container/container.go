// Package container is the driver of OCI containers run by runc. A guest is
// a bundle in its own directory: config.json, built from the VM by a pure
// function (buildSpec), and a root file system that is an overlay of the
// VM's rootfs image, unpacked once per image and shared read-only, under a
// writable layer of its own. The guest is supervised like a process guest,
// by a shim (package process) that runs "runc run" on the bundle, logs the
// container's output, controls its cgroup (freezer, OOM counter) and
// records its exit code; the shim outlives the agent, so a new agent finds
// running containers again and never restarts them. Each driver has its
// own runc --root. Its directory Dir holds:
//
//	guests/<id>/         the guest directories (see package process), with
//	    bundle/          config.json and rootfs/ (the overlay's mount point)
//	    upper/, work/    the overlay's writable layer and work directory
//	rootfs/<sha256>/     the unpacked rootfs images (read-only lower layers)
//	runc/                runc's state directory
package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/atomicfile"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/process"
)

// Name is the driver's name.
const Name = novacron.DriverContainer

// Config configures the container driver.
type Config struct {
	// Dir is the driver's own directory (e.g. DATA/agent/container). It
	// must be short: the guests' unix sockets live under it.
	Dir string
	// Runc is the runc binary (default "runc", looked up in PATH).
	Runc string
	// ShimCommand, CgroupParent, LogMaxBytes, LogFiles and PidsMax are
	// the process driver's (see process.Config).
	ShimCommand  []string
	CgroupParent string
	LogMaxBytes  int64
	LogFiles     int
	PidsMax      int64
	Logger       *slog.Logger
}

// Driver runs OCI containers as guests.
type Driver struct {
	*process.Driver
	cfg  Config
	runc *runc.Runc
	log  *slog.Logger

	unpackMu sync.Mutex

	// execs counts the commands running in each guest (exec.go).
	execMu sync.Mutex
	execs  map[string]int
}

var (
	_ driver.Driver      = (*Driver)(nil)
	_ driver.Pauser      = (*Driver)(nil)
	_ driver.LogReader   = (*Driver)(nil)
	_ driver.StatsReader = (*Driver)(nil)
)

// The files of a guest directory the container driver adds.
const (
	upperDir   = "upper"
	overlayWrk = "overlay-work"
	rootfsDir  = "rootfs"
	configFile = "config.json"
)

// New returns a container driver keeping its guests in cfg.Dir, which it
// creates. It fails when runc is not there.
func New(cfg Config) (*Driver, error) {
	if cfg.Dir == "" {
		return nil, errors.New("container driver: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("container driver: %w", err)
	}
	cfg.Dir = dir
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	if cfg.Runc, err = exec.LookPath(cfg.Runc); err != nil {
		return nil, fmt.Errorf("container driver: runc: %w", err)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "novacron"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, sub := range []string{"rootfs", "runc"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("container driver: %w", err)
		}
	}
	d := &Driver{cfg: cfg, log: cfg.Logger.With("driver", Name),
		runc: &runc.Runc{Command: cfg.Runc, Root: filepath.Join(dir, "runc")}}
	d.Driver, err = process.New(process.Config{
		Dir: filepath.Join(dir, "guests"), ShimCommand: cfg.ShimCommand, CgroupParent: cfg.CgroupParent,
		LogMaxBytes: cfg.LogMaxBytes, LogFiles: cfg.LogFiles, PidsMax: cfg.PidsMax, Logger: cfg.Logger,
		Container: &process.ContainerRuntime{Name: Name, Runc: cfg.Runc, RuncRoot: d.runc.Root,
			Validate: d.ValidateConfig, Prepare: d.prepare, Remove: d.remove},
	})
	if err != nil {
		return nil, fmt.Errorf("container driver: %w", err)
	}
	return d, nil
}

// Capabilities: pause (the freezer), logs (followed too), stats and
// commands run in a running container.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Pause: true, Logs: true, FollowLogs: true, Stats: true, Exec: true}
}

// ValidateConfig checks a container VM's config (every field optional;
// without a command the VM runs its image's default one):
//
//	{"command": ["/bin/sh", "-c", "exec httpd -f"], "env": {"K": "V"}, "cwd": "/srv"}
func (d *Driver) ValidateConfig(config json.RawMessage) error {
	_, err := parseConfig(config)
	return err
}

var sha256Name = regexp.MustCompile(`^[0-9a-f]{64}$`)

// prepare makes the guest's bundle: its rootfs image unpacked (once per
// image), the overlay mounted, config.json written.
func (d *Driver) prepare(ctx context.Context, dir string, spec driver.Spec) error {
	c, err := parseConfig(spec.Config)
	if err != nil {
		return err
	}
	args := c.Command
	if len(args) == 0 {
		args = spec.ImageCommand
	}
	if len(args) == 0 {
		return novacron.FieldError("config.command", "the image has no default command: the VM must name one")
	}
	if spec.BaseImage == "" {
		return novacron.FieldError("image_id", "a container needs a rootfs image")
	}
	lower, err := d.unpacked(spec.BaseImage)
	if err != nil {
		return err
	}
	bundle := filepath.Join(dir, process.BundleDir)
	target := filepath.Join(bundle, rootfsDir)
	for _, p := range []string{bundle, target, filepath.Join(dir, upperDir), filepath.Join(dir, overlayWrk)} {
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("container: %w", err)
		}
	}
	if err := mountOverlay(lower, filepath.Join(dir, upperDir), filepath.Join(dir, overlayWrk), target); err != nil {
		return &novacron.Error{Code: novacron.EOperationFailed, Message: "cannot mount the container's root file system", Err: err}
	}
	if err := stickyTmp(target); err != nil {
		return fmt.Errorf("container: %w", err)
	}
	env := make([]string, 0, len(c.Env))
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	s := buildSpec(bundleParams{ID: spec.ID, Hostname: hostnameOf(spec.Name), UID: spec.UID, GID: spec.GID,
		CPUs: spec.CPUs, MemoryMB: spec.MemoryMB, PidsMax: d.pidsMax(), Args: slices.Clone(args), Env: env, Cwd: c.Cwd,
		Rootfs: target, CgroupsPath: process.CgroupsPath(d.cfg.CgroupParent, spec.ID)})
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("container: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(bundle, configFile), b, 0o600); err != nil {
		return fmt.Errorf("container: %w", err)
	}
	return nil
}

// stickyTmp makes the container's /tmp a world-writable sticky directory
// in its writable layer: runc gives the tmpfs it mounts there the mode of
// the directory it covers, and an image's tmp/ may be 0755. A /tmp that is
// a symbolic link is left alone (through an os.Root, nothing outside the
// root file system is touched either way).
func stickyTmp(rootfs string) error {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Lstat("tmp")
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := root.Mkdir("tmp", 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir():
		return nil
	case fi.Mode()&os.ModePerm == 0o777 && fi.Mode()&os.ModeSticky != 0:
		return nil
	}
	return root.Chmod("tmp", 0o777|os.ModeSticky)
}

func (d *Driver) pidsMax() int64 {
	switch {
	case d.cfg.PidsMax == 0:
		return 4096
	case d.cfg.PidsMax < 0:
		return 0
	}
	return d.cfg.PidsMax
}

// unpacked returns the unpacked tree of a rootfs image from the agent's
// cache (named by its sha256), unpacking it on first use.
func (d *Driver) unpacked(image string) (string, error) {
	name := filepath.Base(image)
	if !sha256Name.MatchString(name) {
		return "", novacron.Errorf(novacron.EInvalid, "rootfs image %s is not a cached image", name)
	}
	lower := filepath.Join(d.cfg.Dir, "rootfs", name)
	d.unpackMu.Lock()
	defer d.unpackMu.Unlock()
	if _, err := os.Stat(lower); err == nil {
		return lower, nil
	}
	t0 := time.Now()
	if err := unpackRootfs(image, lower); err != nil {
		return "", &novacron.Error{Code: novacron.EOperationFailed, Message: "cannot unpack the rootfs image", Err: err}
	}
	d.log.Info("rootfs image unpacked", "image", name, "took", time.Since(t0))
	return lower, nil
}

// remove unmounts the guest's overlay and forgets its container in runc.
func (d *Driver) remove(ctx context.Context, dir string) error {
	if err := unmountOverlay(filepath.Join(dir, process.BundleDir, rootfsDir)); err != nil {
		return err
	}
	err := d.runc.Delete(ctx, filepath.Base(dir), &runc.DeleteOpts{Force: true})
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		return fmt.Errorf("runc delete: %w", err)
	}
	return nil
}

// Stats samples a running container: CPU, memory, pids and block I/O from
// its cgroup through "runc events --stats", network from its init's
// /proc/<pid>/net/dev (every interface but lo).
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	st, err := d.Status(ctx, id)
	if err != nil {
		return driver.Stats{}, err
	}
	if st.State != driver.GuestRunning && st.State != driver.GuestPaused {
		return driver.Stats{}, novacron.Errorf(novacron.EInvalidState, "guest %s is %s, not running", id, st.State)
	}
	rs, err := d.runcStats(ctx, id)
	if err != nil {
		return driver.Stats{}, fmt.Errorf("container: guest %s: runc events --stats: %w", id, err)
	}
	out := driver.Stats{SampledAt: time.Now().UTC(), CPUSeconds: float64(rs.Cpu.Usage.Total) / 1e9,
		MemoryBytes: int64(rs.Memory.Usage.Usage)}
	pids := int64(rs.Pids.Current)
	out.Pids = &pids
	var rb, wb, ro, wo int64
	for _, e := range rs.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			rb += int64(e.Value)
		case "write":
			wb += int64(e.Value)
		}
	}
	for _, e := range rs.Blkio.IoServicedRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			ro += int64(e.Value)
		case "write":
			wo += int64(e.Value)
		}
	}
	out.DiskReadBytes, out.DiskWriteBytes, out.DiskReadOps, out.DiskWriteOps = &rb, &wb, &ro, &wo
	if rx, tx, err := netDev(st.PID); err == nil {
		out.NetworkRxBytes, out.NetworkTxBytes = &rx, &tx
	}
	return out, nil
}

// runcStats runs "runc events --stats". (go-runc's Stats reads its pipe
// while its process monitor may already have closed it.)
func (d *Driver) runcStats(ctx context.Context, id string) (*runc.Stats, error) {
	out, err := exec.CommandContext(ctx, d.cfg.Runc, "--root", d.runc.Root, "events", "--stats", id).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return nil, err
	}
	var e runc.Event
	if err := json.Unmarshal(out, &e); err != nil {
		return nil, err
	}
	if e.Stats == nil {
		return nil, errors.New("no stats")
	}
	return e.Stats, nil
}

// netDev sums the received and sent bytes of every interface but lo in
// the network namespace of pid.
func netDev(pid int) (rx, tx int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0, err
	}
	for i, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if i < 2 || !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		var r, t int64
		if _, err := fmt.Sscan(f[0], &r); err != nil {
			continue
		}
		if _, err := fmt.Sscan(f[8], &t); err != nil {
			continue
		}
		rx += r
		tx += t
	}
	return rx, tx, nil
}
