// Package qemu is the driver of QEMU virtual machines, driven over QMP on a
// unix socket. A guest boots from its qcow2 disk (blank, or made from a base
// image: an overlay whose backing file is the image in the agent's cache, or
// a full copy), with an optional cloud-init NoCloud seed as a CD-ROM, or
// directly from a kernel and initrd. QEMU runs daemonized in its own session
// under the guest's own uid (-runas) and seccomp (-sandbox), so it outlives
// the agent; a new driver finds it again through its pid file and QMP
// socket. Everything lives in the guest's directory Dir/<id>/ (0700):
//
//	spec.json     the driver.Spec the guest was created or started with
//	disk.qcow2    the guest's disk, when it has one
//	seed.iso      the cloud-init NoCloud seed, when its config has one
//	qmp.sock      QMP (0600), for commands
//	events.sock   a second QMP monitor (0600), which Watch holds to hear events
//	console.sock  the serial console (0600); console.log its output, and
//	              console.log.1 the older output once the log was capped
//	qemu.pid      QEMU's pid file; qemu.err QEMU's start-up errors
//	run.json      the current or last run: pid and start time
//	exit.json     how the last run ended, once known
//
// A guest that powers off leaves QEMU in the "shutdown" state (-no-shutdown):
// the driver records the clean power-off in exit.json (code 0) and quits
// QEMU, whether it sees it in Stop or later in Status. A QEMU that vanished
// with no record (killed, crashed) exited unexpectedly, with no exit code.
package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/atomicfile"
	"github.com/novacron/novacron/internal/driver"
)

// Name is the driver's name.
const Name = novacron.DriverQEMU

// Config configures the qemu driver.
type Config struct {
	// Dir is the driver's own directory (e.g. DATA/guests/qemu); it holds
	// one directory per guest. It must be short: the guests' unix sockets
	// live under it.
	Dir string
	// Accel is the node's default accelerator: auto (KVM when QEMU can run
	// a KVM machine here, probed once, else TCG; the default), kvm or
	// tcg. A VM's config.accel overrides it.
	Accel string
	// PortMin and PortMax bound the host ports a guest may forward
	// (default 20000-29999); 22 and 8090 are never allowed.
	PortMin, PortMax int
	// ForwardAddress is the IPv4 address forwarded ports listen on
	// (default 127.0.0.1).
	ForwardAddress string
	// CopyBaseImage makes a guest's disk a full copy of its base image
	// instead of an overlay backed by the image in the cache.
	CopyBaseImage bool
	// QEMUBinary and QEMUImg are the programs run (defaults
	// "qemu-system-x86_64" and "qemu-img", looked up in PATH).
	QEMUBinary string
	QEMUImg    string
	// ConsoleLogMax caps a guest's console log (default 1 MiB): past it,
	// Watch moves the log to console.log.1 and starts it afresh, so a
	// guest keeps at most about twice this much.
	ConsoleLogMax int64
	// WatchInterval is how often Watch looks for guests to watch and logs
	// to cap (default 1s).
	WatchInterval time.Duration
	Logger        *slog.Logger
}

// Driver runs QEMU virtual machines as guests.
type Driver struct {
	cfg Config
	log *slog.Logger
	// kick wakes Watch when a guest starts.
	kick chan struct{}

	mu       sync.Mutex
	consoles map[string]bool // guests whose console is connected

	kvmWorks func() bool
}

var (
	_ driver.Driver      = (*Driver)(nil)
	_ driver.Pauser      = (*Driver)(nil)
	_ driver.LogReader   = (*Driver)(nil)
	_ driver.Restarter   = (*Driver)(nil)
	_ driver.Watcher     = (*Driver)(nil)
	_ driver.Consoler    = (*Driver)(nil)
	_ driver.StatsReader = (*Driver)(nil)
)

// The files of a guest directory besides QEMU's own (cmdline.go).
const (
	specFile = "spec.json"
	diskFile = "disk.qcow2"
	seedFile = "seed.iso"
	errFile  = "qemu.err"
	runFile  = "run.json"
	exitFile = "exit.json"
)

// maxSocketPath is the longest path a unix socket address can hold.
const maxSocketPath = 107

// Exit reasons.
const (
	reasonPoweredOff    = "powered off"
	reasonForcedOff     = "forced off"
	reasonVanished      = "qemu exited unexpectedly"
	reasonPanicked      = "the guest panicked"
	reasonInternalError = "qemu stopped the guest on an internal error"
)

func ptr[T any](v T) *T { return &v }

// ForcedExitCode is the exit code of a guest the driver forced off (a
// forced Stop, or a graceful one past its timeout), as if killed.
const ForcedExitCode = 137

// ForcedReason is the reason of a guest the driver forced off.
const ForcedReason = reasonForcedOff

// New returns a qemu driver keeping its guests in cfg.Dir, which it
// creates. It does not touch running guests: they are found on disk.
func New(cfg Config) (*Driver, error) {
	if cfg.Dir == "" {
		return nil, errors.New("qemu driver: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("qemu driver: %w", err)
	}
	cfg.Dir = dir
	if n := len(dir) + 1 + 36 + 1 + len(consoleSock); n > maxSocketPath {
		return nil, fmt.Errorf("qemu driver: the directory %s is too long by %d bytes for the guests' unix sockets; use a shorter data directory", dir, n-maxSocketPath)
	}
	switch cfg.Accel {
	case "":
		cfg.Accel = AccelAuto
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		return nil, fmt.Errorf("qemu driver: accelerator %q: want auto, kvm or tcg", cfg.Accel)
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = 20000, 29999
	}
	if cfg.PortMin < 1 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax {
		return nil, fmt.Errorf("qemu driver: port range %d-%d is not a range of ports", cfg.PortMin, cfg.PortMax)
	}
	if cfg.ForwardAddress == "" {
		cfg.ForwardAddress = "127.0.0.1"
	}
	if ip := net.ParseIP(cfg.ForwardAddress); ip == nil || ip.To4() == nil {
		return nil, fmt.Errorf("qemu driver: forward address %q is not an IPv4 address", cfg.ForwardAddress)
	}
	if cfg.QEMUBinary == "" {
		cfg.QEMUBinary = "qemu-system-x86_64"
	}
	if cfg.QEMUImg == "" {
		cfg.QEMUImg = "qemu-img"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ConsoleLogMax <= 0 {
		cfg.ConsoleLogMax = 1 << 20
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu driver: %w", err)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger.With("driver", Name), kick: make(chan struct{}, 1), consoles: map[string]bool{}}
	d.kvmWorks = sync.OnceValue(d.probeKVM)
	return d, nil
}

// probeKVM reports whether QEMU can run a KVM virtual machine here: that
// /dev/kvm opens is not enough (nested virtualisation may refuse a vCPU's
// MSRs, and QEMU aborts). It makes one with the guests' machine and CPU,
// stopped (-S), and quits it over QMP.
func (d *Driver) probeKVM() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		d.log.Info("accelerator auto: TCG (no usable /dev/kvm)", "err", err)
		return false
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cfg.QEMUBinary, "-machine", "q35,accel=kvm", "-cpu", "host", "-nodefaults",
		"-no-user-config", "-display", "none", "-S", "-qmp", "stdio")
	cmd.Stdin = strings.NewReader(`{"execute":"qmp_capabilities"}` + "\n" + `{"execute":"quit"}` + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		d.log.Warn("accelerator auto: TCG, as QEMU cannot run a KVM virtual machine here", "err", err,
			"stderr", string(bytes.TrimSpace(stderr.Bytes())))
		return false
	}
	d.log.Info("accelerator auto: KVM")
	return true
}

// Name is "qemu".
func (d *Driver) Name() string { return Name }

// Capabilities: pause, logs and an interactive serial console, restart
// in place, stats, and state changes seen as QMP events.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Pause: true, Logs: true, Restart: true, Console: true, Stats: true, Watch: true}
}

// ValidateConfig checks a qemu VM's config (all fields optional):
//
//	{"accel": "auto|kvm|tcg", "cmdline": "console=ttyS0",
//	 "kernel_image_id": UUID, "initrd_image_id": UUID,
//	 "port_forwards": [{"host_port": 20022, "guest_port": 22, "proto": "tcp"}],
//	 "cloud_init": {"user_data": "…", "ssh_authorized_keys": ["…"], "hostname": "web1"}}
//
// cmdline is at most 4096 bytes; host ports are in the driver's range and
// never 22 or 8090; user_data is at most 64 KiB; hostname is a DNS label.
func (d *Driver) ValidateConfig(config json.RawMessage) error {
	_, err := d.parseConfig(config)
	return err
}

func (d *Driver) parseConfig(config json.RawMessage) (guestConfig, error) {
	return parseConfig(config, d.cfg.PortMin, d.cfg.PortMax)
}

// validID reports whether id is a canonical (lower-case) UUID: guest
// directories are named after it.
func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// checkSpec checks what Create and Start are given, and returns its config.
func (d *Driver) checkSpec(spec driver.Spec) (guestConfig, error) {
	switch {
	case !validID(spec.ID):
		return guestConfig{}, novacron.FieldError("id", "must be a UUID")
	case spec.UID <= 0 || spec.UID > 1<<31-1:
		return guestConfig{}, novacron.Errorf(novacron.EInvalid, "guest %s: uid %d is not an unprivileged uid", spec.ID, spec.UID)
	case spec.GID <= 0 || spec.GID > 1<<31-1:
		return guestConfig{}, novacron.Errorf(novacron.EInvalid, "guest %s: gid %d is not an unprivileged gid", spec.ID, spec.GID)
	case spec.CPUs < 0 || spec.CPUs > 255:
		return guestConfig{}, novacron.FieldError("cpus", "must be between 0 and 255")
	case spec.MemoryMB < 0 || spec.MemoryMB > 1<<24:
		return guestConfig{}, novacron.FieldError("memory_mb", "must be between 0 and %d", 1<<24)
	case spec.DiskGB < 0 || spec.DiskGB > 1<<16:
		return guestConfig{}, novacron.FieldError("disk_gb", "must be between 0 and %d", 1<<16)
	}
	c, err := d.parseConfig(spec.Config)
	if err != nil {
		return c, err
	}
	switch {
	case c.KernelImageID != "" && spec.Kernel == "":
		return c, novacron.FieldError("config.kernel_image_id", "the kernel image is not available on this node")
	case c.InitrdImageID != "" && spec.Initrd == "":
		return c, novacron.FieldError("config.initrd_image_id", "the initrd image is not available on this node")
	case spec.Initrd != "" && spec.Kernel == "":
		return c, novacron.FieldError("config.initrd_image_id", "needs a kernel_image_id")
	case spec.Kernel == "" && spec.BaseImage == "" && spec.DiskGB == 0:
		return c, novacron.FieldError("disk_gb", "must be positive for a guest that boots from a blank disk")
	}
	if spec.BaseImage != "" && spec.BaseImageFormat != "qcow2" && spec.BaseImageFormat != "raw" {
		return c, novacron.Errorf(novacron.EInvalid, "guest %s: base image format %q is not qcow2 or raw", spec.ID, spec.BaseImageFormat)
	}
	return c, nil
}

func notFound(id string) error {
	return novacron.Errorf(novacron.ENotFound, "guest %s not found", id)
}

// guestDir returns the directory of an existing guest.
func (d *Driver) guestDir(id string) (string, error) {
	if !validID(id) {
		return "", notFound(id)
	}
	dir := filepath.Join(d.cfg.Dir, id)
	if _, err := os.Stat(filepath.Join(dir, specFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", notFound(id)
		}
		return "", fmt.Errorf("qemu: %w", err)
	}
	return dir, nil
}

// Create prepares the guest's directory, its disk (kept if it exists) and
// its cloud-init seed. It is idempotent; a running guest's spec is not
// replaced.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	c, err := d.checkSpec(spec)
	if err != nil {
		return err
	}
	dir := filepath.Join(d.cfg.Dir, spec.ID)
	if _, err := os.Stat(filepath.Join(dir, specFile)); err == nil {
		st, err := d.Status(ctx, spec.ID)
		if err != nil {
			return err
		}
		if st.State == driver.GuestRunning || st.State == driver.GuestPaused {
			if b, err := os.ReadFile(filepath.Join(dir, specFile)); err == nil {
				if want, _ := json.Marshal(spec); bytes.Equal(bytes.TrimSpace(b), want) {
					return nil
				}
			}
			return novacron.Errorf(novacron.EInvalidState, "guest %s is %s: its spec cannot change", spec.ID, st.State)
		}
	}
	return d.prepare(ctx, dir, spec, c)
}

// prepare makes the guest's directory, spec, disk and seed.
func (d *Driver) prepare(ctx context.Context, dir string, spec driver.Spec, c guestConfig) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("qemu: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, specFile), b, 0o600); err != nil {
		return fmt.Errorf("qemu: write spec: %w", err)
	}
	if err := d.makeDisk(ctx, dir, spec); err != nil {
		return err
	}
	seed := filepath.Join(dir, seedFile)
	if c.CloudInit == nil {
		if err := os.Remove(seed); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("qemu: %w", err)
		}
		return nil
	}
	var iso bytes.Buffer
	if err := writeSeed(&iso, spec.ID, *c.CloudInit); err != nil {
		return fmt.Errorf("qemu: guest %s: %w", spec.ID, err)
	}
	if err := atomicfile.Write(seed, iso.Bytes(), 0o600); err != nil {
		return fmt.Errorf("qemu: guest %s: %w", spec.ID, err)
	}
	return nil
}

// makeDisk creates the guest's qcow2 disk unless it exists: an overlay on
// the base image (or a copy of it, with CopyBaseImage), grown to DiskGB
// when that is larger than the image; else a blank disk of DiskGB, or none
// when DiskGB is 0.
func (d *Driver) makeDisk(ctx context.Context, dir string, spec driver.Spec) error {
	disk := filepath.Join(dir, diskFile)
	if _, err := os.Stat(disk); err == nil {
		return nil
	}
	if spec.BaseImage == "" && spec.DiskGB == 0 {
		return nil
	}
	tmp := filepath.Join(dir, ".disk.qcow2.tmp")
	_ = os.Remove(tmp)
	size := int64(spec.DiskGB) << 30
	switch {
	case spec.BaseImage == "":
		if err := d.qemuImg(ctx, "create", "-q", "-f", "qcow2", tmp, strconv.FormatInt(size, 10)); err != nil {
			return err
		}
	case d.cfg.CopyBaseImage:
		if err := d.qemuImg(ctx, "convert", "-q", "-f", spec.BaseImageFormat, "-O", "qcow2", spec.BaseImage, tmp); err != nil {
			return err
		}
	default:
		// The backing format is explicit: QEMU never guesses an image's
		// format.
		if err := d.qemuImg(ctx, "create", "-q", "-f", "qcow2", "-b", spec.BaseImage, "-F", spec.BaseImageFormat, tmp); err != nil {
			return err
		}
	}
	if spec.BaseImage != "" && size > 0 {
		// A disk is never smaller than its image: qemu-img would cut it.
		virt, err := d.virtualSize(ctx, tmp)
		if err != nil {
			_ = os.Remove(tmp)
			return err
		}
		if size > virt {
			if err := d.qemuImg(ctx, "resize", "-q", "-f", "qcow2", tmp, strconv.FormatInt(size, 10)); err != nil {
				_ = os.Remove(tmp)
				return err
			}
		}
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("qemu: %w", err)
	}
	if err := os.Rename(tmp, disk); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

func (d *Driver) qemuImg(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, args...).CombinedOutput()
	if err != nil {
		return &novacron.Error{Code: novacron.EOperationFailed, Message: "qemu-img failed to make the guest's disk",
			Err: fmt.Errorf("qemu-img %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))}
	}
	return nil
}

func (d *Driver) virtualSize(ctx context.Context, path string) (int64, error) {
	out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "info", "--output=json", "-f", "qcow2", path).Output()
	if err != nil {
		return 0, fmt.Errorf("qemu: qemu-img info %s: %w", path, err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, fmt.Errorf("qemu: qemu-img info %s: %w", path, err)
	}
	return info.VirtualSize, nil
}

// runRecord is run.json: the current or last run of QEMU.
type runRecord struct {
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
}

// exitRecord is exit.json: how the last run ended. ExitCode is nil when it
// is not known (QEMU vanished).
type exitRecord struct {
	ExitCode  *int      `json:"exit_code,omitempty"`
	Reason    string    `json:"reason"`
	StartedAt time.Time `json:"started_at"`
	ExitedAt  time.Time `json:"exited_at"`
}

// startTimeout bounds how long QEMU may take to daemonize.
const startTimeout = 30 * time.Second

// Start starts a created or exited guest: it runs QEMU, which daemonizes
// once its sockets listen, and returns once QMP answers.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) error {
	c, err := d.checkSpec(spec)
	if err != nil {
		return err
	}
	dir, err := d.guestDir(spec.ID)
	if err != nil {
		return err
	}
	st, err := d.Status(ctx, spec.ID)
	if err != nil {
		return err
	}
	if st.State == driver.GuestRunning || st.State == driver.GuestPaused {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is already %s", spec.ID, st.State)
	}
	if err := d.prepare(ctx, dir, spec, c); err != nil {
		return err
	}
	accel := c.Accel
	if accel == "" {
		accel = d.cfg.Accel
	}
	if accel == AccelAuto {
		accel = AccelTCG
		if d.kvmWorks() {
			accel = AccelKVM
		}
	}
	l := launch{ID: spec.ID, Dir: dir, CPUs: spec.CPUs, MemoryMB: spec.MemoryMB, UID: spec.UID, GID: spec.GID,
		Accel: accel, Kernel: spec.Kernel, Initrd: spec.Initrd, Cmdline: c.Cmdline,
		PortForwards: c.PortForwards, ForwardAddress: d.cfg.ForwardAddress}
	if _, err := os.Stat(filepath.Join(dir, diskFile)); err == nil {
		l.Disk = filepath.Join(dir, diskFile)
	}
	if c.CloudInit != nil {
		l.Seed = filepath.Join(dir, seedFile)
	}
	// The last run's traces go: until QEMU runs, the guest reads as
	// created, never as the last run's exit.
	// Each run's console log starts empty.
	for _, f := range []string{runFile, exitFile, pidFile, qmpSock, eventsSock, consoleSock, consoleLog, oldConsoleLog} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("qemu: %w", err)
		}
	}
	if err := d.spawn(ctx, dir, l); err != nil {
		return err
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return nil
}

func (d *Driver) spawn(ctx context.Context, dir string, l launch) error {
	errOut, err := os.OpenFile(filepath.Join(dir, errFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	defer errOut.Close()
	started := time.Now().UTC()
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	cmd := exec.CommandContext(sctx, d.cfg.QEMUBinary, buildArgs(l)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	// A file, not a pipe: the daemonized QEMU may keep it open.
	cmd.Stdout, cmd.Stderr = errOut, errOut
	// Its own session: QEMU outlives the agent and its signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	runErr := cmd.Run()
	pid, perr := readPid(filepath.Join(dir, pidFile))
	if runErr != nil || perr != nil || !d.qemuAlive(dir, pid) {
		if perr == nil && d.qemuAlive(dir, pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		msg, _ := os.ReadFile(filepath.Join(dir, errFile))
		cause := runErr
		if cause == nil {
			cause = errors.New("qemu is not running after it daemonized")
		}
		for _, f := range []string{pidFile, qmpSock, eventsSock, consoleSock} {
			_ = os.Remove(filepath.Join(dir, f))
		}
		d.log.Warn("guest failed to start", "guest", l.ID, "err", cause, "stderr", string(bytes.TrimSpace(msg)))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &novacron.Error{Code: novacron.EOperationFailed, Message: "qemu failed to start the guest",
			Err: fmt.Errorf("%w: %s", cause, bytes.TrimSpace(msg))}
	}
	for _, s := range []string{qmpSock, eventsSock, consoleSock} {
		if err := os.Chmod(filepath.Join(dir, s), 0o600); err != nil {
			d.log.Warn("chmod socket", "guest", l.ID, "err", err)
		}
	}
	b, _ := json.Marshal(runRecord{PID: pid, StartedAt: started})
	if err := atomicfile.Write(filepath.Join(dir, runFile), b, 0o600); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("qemu: write %s: %w", runFile, err)
	}
	q, err := d.dial(ctx, dir)
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return &novacron.Error{Code: novacron.EOperationFailed, Message: "qemu started but its QMP socket does not answer", Err: err}
	}
	q.Close()
	d.log.Info("guest started", "guest", l.ID, "pid", pid, "accel", l.Accel)
	return nil
}

// dial connects to the guest's QMP socket.
func (d *Driver) dial(ctx context.Context, dir string) (*qmpConn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return dialQMP(cctx, filepath.Join(dir, qmpSock))
}

// running returns the run record of a QEMU that is alive.
func (d *Driver) running(dir string) (runRecord, bool, error) {
	var run runRecord
	b, err := os.ReadFile(filepath.Join(dir, runFile))
	if errors.Is(err, os.ErrNotExist) {
		// An agent that died between QEMU's start and run.json left a
		// QEMU that only its pid file names: adopt it.
		pidPath := filepath.Join(dir, pidFile)
		pid, perr := readPid(pidPath)
		if perr != nil || !d.qemuAlive(dir, pid) {
			return run, false, nil
		}
		run = runRecord{PID: pid, StartedAt: time.Now().UTC()}
		if fi, err := os.Stat(pidPath); err == nil {
			run.StartedAt = fi.ModTime().UTC()
		}
		b, _ := json.Marshal(run)
		if err := atomicfile.Write(filepath.Join(dir, runFile), b, 0o600); err != nil {
			return run, false, fmt.Errorf("qemu: write %s: %w", runFile, err)
		}
		return run, true, nil
	}
	if err != nil {
		return run, false, fmt.Errorf("qemu: %w", err)
	}
	if err := json.Unmarshal(b, &run); err != nil {
		return run, false, fmt.Errorf("qemu: %s: %w", runFile, err)
	}
	return run, d.qemuAlive(dir, run.PID), nil
}

// guestStatus returns an existing guest's directory and status.
func (d *Driver) guestStatus(ctx context.Context, id string) (string, driver.Status, error) {
	dir, err := d.guestDir(id)
	if err != nil {
		return "", driver.Status{}, err
	}
	st, err := d.Status(ctx, id)
	return dir, st, err
}

// Status reports the guest's state: from QMP's query-status while QEMU
// runs, from exit.json after. A QEMU found in the "shutdown" state (its
// guest powered off) is quit, and the guest has exited with code 0.
func (d *Driver) Status(ctx context.Context, id string) (driver.Status, error) {
	dir, err := d.guestDir(id)
	if err != nil {
		return driver.Status{}, err
	}
	run, alive, err := d.running(dir)
	if err != nil {
		return driver.Status{}, err
	}
	if run.PID == 0 {
		return driver.Status{State: driver.GuestCreated}, nil
	}
	if alive {
		q, err := d.dial(ctx, dir)
		if err == nil {
			defer q.Close()
			var qs qmpStatus
			if qs, err = q.QueryStatus(ctx); err == nil {
				switch {
				case qs.Status == "shutdown":
					if err := d.forceOff(ctx, dir, q, run, ptr(0), reasonPoweredOff); err != nil {
						return driver.Status{}, err
					}
				case qs.Status == "guest-panicked":
					d.log.Warn("guest panicked", "guest", id)
					if err := d.forceOff(ctx, dir, q, run, nil, reasonPanicked); err != nil {
						return driver.Status{}, err
					}
				case qs.Status == "internal-error":
					d.log.Warn("qemu reports an internal error", "guest", id)
					if err := d.forceOff(ctx, dir, q, run, nil, reasonInternalError); err != nil {
						return driver.Status{}, err
					}
				case qs.Running:
					return driver.Status{State: driver.GuestRunning, PID: run.PID, StartedAt: run.StartedAt}, nil
				default:
					return driver.Status{State: driver.GuestPaused, PID: run.PID, StartedAt: run.StartedAt}, nil
				}
			}
		}
		// A QEMU that is quitting closes its socket a moment before it
		// exits: give it that moment before calling it unresponsive.
		if err != nil && !d.waitGone(ctx, dir, run.PID, time.Second) {
			if ctx.Err() != nil {
				return driver.Status{}, ctx.Err()
			}
			return driver.Status{}, &novacron.Error{Code: novacron.EOperationFailed, Message: "qemu does not answer on its QMP socket", Err: err}
		}
	}
	return d.exited(dir, run)
}

// exited returns the status of a guest whose QEMU is gone, recording an
// unexpected end when nothing recorded how it ended.
func (d *Driver) exited(dir string, run runRecord) (driver.Status, error) {
	rec, ok, err := readExit(dir)
	if err != nil {
		return driver.Status{}, err
	}
	if !ok {
		rec = exitRecord{Reason: reasonVanished, StartedAt: run.StartedAt, ExitedAt: time.Now().UTC()}
		if err := writeExit(dir, rec); err != nil {
			return driver.Status{}, err
		}
		d.log.Warn("qemu exited unexpectedly", "guest", filepath.Base(dir), "pid", run.PID)
	}
	return driver.Status{State: driver.GuestExited, ExitCode: rec.ExitCode, Reason: rec.Reason,
		StartedAt: rec.StartedAt, ExitedAt: rec.ExitedAt}, nil
}

func readExit(dir string) (exitRecord, bool, error) {
	var rec exitRecord
	b, err := os.ReadFile(filepath.Join(dir, exitFile))
	if errors.Is(err, os.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("qemu: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, fmt.Errorf("qemu: %s: %w", exitFile, err)
	}
	return rec, true, nil
}

func writeExit(dir string, rec exitRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, exitFile), b, 0o600); err != nil {
		return fmt.Errorf("qemu: write %s: %w", exitFile, err)
	}
	return nil
}

// forceOff records how the guest ends, then quits QEMU (SIGKILL when quit
// does not end it) and waits until it is gone.
func (d *Driver) forceOff(ctx context.Context, dir string, q *qmpConn, run runRecord, code *int, reason string) error {
	if err := writeExit(dir, exitRecord{ExitCode: code, Reason: reason, StartedAt: run.StartedAt, ExitedAt: time.Now().UTC()}); err != nil {
		return err
	}
	if q != nil {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = q.Execute(qctx, "quit", nil, nil) // QEMU may close the socket before it answers
		cancel()
	}
	if d.waitGone(ctx, dir, run.PID, 5*time.Second) {
		return nil
	}
	_ = syscall.Kill(run.PID, syscall.SIGKILL)
	if d.waitGone(ctx, dir, run.PID, 5*time.Second) {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return novacron.Errorf(novacron.EOperationFailed, "guest %s: qemu (pid %d) does not exit", filepath.Base(dir), run.PID)
}

// waitGone waits until QEMU is gone, at most limit; it reports whether it
// is.
func (d *Driver) waitGone(ctx context.Context, dir string, pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for d.qemuAlive(dir, pid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// powerdownEvery is how often a graceful stop presses the power button
// again: a press before the guest's OS listens is lost.
const powerdownEvery = time.Second

// Stop ends the guest: an ACPI power button press (thawing a paused guest
// first), then, if the guest has not powered off after timeout, QMP quit.
// A forced stop quits at once. It returns once QEMU is gone.
func (d *Driver) Stop(ctx context.Context, id string, timeout time.Duration, force bool) error {
	dir, st, err := d.guestStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.State != driver.GuestRunning && st.State != driver.GuestPaused {
		return nil
	}
	run, alive, err := d.running(dir)
	if err != nil || !alive {
		return err
	}
	q, err := d.dial(ctx, dir)
	if err != nil {
		if !d.qemuAlive(dir, run.PID) {
			return nil
		}
		d.log.Warn("qmp does not answer: killing qemu", "guest", id, "err", err)
		return d.forceOff(ctx, dir, nil, run, ptr(ForcedExitCode), reasonForcedOff)
	}
	defer q.Close()
	if force {
		return d.forceOff(ctx, dir, q, run, ptr(ForcedExitCode), reasonForcedOff)
	}
	if st.State == driver.GuestPaused {
		if err := q.Execute(ctx, "cont", nil, nil); err != nil {
			return fmt.Errorf("qemu: guest %s: %w", id, err)
		}
	}
	deadline := time.Now().Add(timeout)
	var pressed time.Time
	for {
		if time.Since(pressed) >= powerdownEvery {
			if err := q.Execute(ctx, "system_powerdown", nil, nil); err != nil {
				break // QEMU is ending, or hung: forceOff settles it
			}
			pressed = time.Now()
		}
		qs, err := q.QueryStatus(ctx)
		if err != nil {
			break
		}
		if qs.Status == "shutdown" {
			d.log.Info("guest powered off", "guest", id)
			return d.forceOff(ctx, dir, q, run, ptr(0), reasonPoweredOff)
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	if !d.qemuAlive(dir, run.PID) {
		return nil
	}
	d.log.Info("guest did not power off in time: forcing it off", "guest", id, "timeout", timeout)
	return d.forceOff(ctx, dir, q, run, ptr(ForcedExitCode), reasonForcedOff)
}

// Pause stops the running guest's vCPUs (QMP stop) and confirms it.
func (d *Driver) Pause(ctx context.Context, id string) error {
	return d.runState(ctx, id, driver.GuestRunning, "stop", false)
}

// Resume restarts the paused guest's vCPUs (QMP cont) and confirms it.
func (d *Driver) Resume(ctx context.Context, id string) error {
	return d.runState(ctx, id, driver.GuestPaused, "cont", true)
}

func (d *Driver) runState(ctx context.Context, id string, from driver.GuestState, command string, wantRunning bool) error {
	dir, st, err := d.guestStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.State != from {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is %s, not %s", id, st.State, from)
	}
	q, err := d.dial(ctx, dir)
	if err != nil {
		return fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	defer q.Close()
	if err := q.Execute(ctx, command, nil, nil); err != nil {
		return fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	qs, err := q.QueryStatus(ctx)
	if err != nil {
		return fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	if qs.Running != wantRunning {
		return novacron.Errorf(novacron.EOperationFailed, "guest %s: qemu reports %q after %s", id, qs.Status, command)
	}
	return nil
}

// maxLogRead bounds how much of the console log Logs reads.
const maxLogRead = 8 << 20

// Logs returns the last tail lines of the guest's serial console (all of
// the current run's log, up to its last 8 MiB, when tail <= 0), with the
// console's CRLF line ends turned into LF.
func (d *Driver) Logs(ctx context.Context, id string, tail int) ([]byte, error) {
	dir, err := d.guestDir(id)
	if err != nil {
		return nil, err
	}
	b, err := readTail(filepath.Join(dir, consoleLog), maxLogRead)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if rest := maxLogRead - int64(len(b)); rest > 0 && (tail <= 0 || bytes.Count(b, []byte("\n")) < tail) {
		old, err := readTail(filepath.Join(dir, oldConsoleLog), rest)
		if err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
		if len(old) > 0 {
			b = append(old, b...)
		}
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return tailLines(b, tail), nil
}

// Delete removes an exited or created guest and every file of it. A QEMU
// left in its directory's name is killed first.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	dir := filepath.Join(d.cfg.Dir, id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, specFile)); err == nil {
		st, err := d.Status(ctx, id)
		if err != nil && !novacron.IsCode(err, novacron.EOperationFailed) {
			return err
		}
		if err == nil && (st.State == driver.GuestRunning || st.State == driver.GuestPaused) {
			return novacron.Errorf(novacron.EInvalidState, "guest %s is %s: stop it first", id, st.State)
		}
	}
	// A QEMU that does not answer, or one started without a run record.
	pids := []int{}
	if run, alive, _ := d.running(dir); alive {
		pids = append(pids, run.PID)
	}
	if pid, err := readPid(filepath.Join(dir, pidFile)); err == nil && d.qemuAlive(dir, pid) {
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !d.waitGone(ctx, dir, pid, 5*time.Second) {
			return novacron.Errorf(novacron.EOperationFailed, "guest %s: qemu (pid %d) does not exit", id, pid)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	d.log.Info("guest deleted", "guest", id)
	return nil
}

// List returns the ids of the guests in the driver's directory.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	ids := []string{}
	for _, e := range entries {
		if e.IsDir() && validID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}
