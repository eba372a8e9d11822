// Command containerbench measures what NovaCron adds to OCI containers run
// by runc, each figure beside its baseline in the same run: the same bundle
// run by a bare "runc run -d". For each count of -counts:
//
//   - Latency: that many containers created and started through the API
//     (POST /api/vm/vms?wait=1, driver container, a busybox rootfs image the
//     benchmark builds from /bin/busybox), -concurrency calls at a time,
//     then stopped and deleted the same way; beside as many bare
//     "runc run -d" of an equivalent bundle (the config.json a NovaCron
//     guest got, its root pointed at a plain unpack of the same rootfs, its
//     cgroup renamed), timed until runc returns, then "runc kill" (SIGTERM)
//     timed until the container's init has exited, then "runc delete -f".
//     p50 and p99 of each phase, and NovaCron's over bare. NovaCron's
//     create+start is also split in two by the server's log ("vm state"
//     records): the create (API, database, the bundle: overlay mount and
//     config.json) and the start (shim, "runc run").
//   - Memory of idle containers: while they run, the memory of each
//     container (the PSS of its processes, and its memory cgroup's usage:
//     the baseline) against NovaCron's overhead: its shim and the
//     "runc run" the shim keeps in the foreground (their PSS), and the
//     growth of this process's RSS, Go heap and goroutines (the server runs
//     in it: API, VM service, agent, driver). A bare "runc run -d" leaves no
//     process beside the container; that is measured too.
//
// The containers run /bin/sh -c "trap 'exit 0' TERM; sleep 3600 & wait":
// idle, and ending at a SIGTERM as a service does. (A lone sleep as the
// init of a PID namespace ignores SIGTERM, so its stop would time the stop
// timeout.) After each count, and again once the server has closed, it
// checks that nothing is left: no shim, runc or container process, no
// container in runc's state (runc list on the agent's root and on the bare
// one), no mount, no cgroup, no guest directory. It needs root, runc and
// /bin/busybox (busybox-static). It makes itself a child subreaper: a bare
// container's init, orphaned when "runc run -d" returns, is its child and
// reaped as it exits, as a shim's "runc run" reaps a NovaCron container's.
//
//	go run ./bench/containerbench -counts 1,10,100 -concurrency 8 [-settle 2s] [-novacron PATH]
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/novacron/novacron/bench/internal/benchkit"
	"github.com/novacron/novacron/internal/server"
)

// idleCommand is every container's command, NovaCron's and bare.
var idleCommand = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}

const (
	// guestCgroupParent is the server's default cgroup parent of guests.
	guestCgroupParent = "novacron"
	// memoryMB and cpus size every container (the bare ones inherit them
	// with the config.json).
	memoryMB = 64
	cpus     = 1
	busybox  = "/bin/busybox"
)

type options struct {
	counts []int
	conc   int
	settle time.Duration
	runc   string
	shim   string
}

func main() {
	var o options
	countsFlag := flag.String("counts", "1,10,100", "numbers of containers run together, one count after the other")
	flag.IntVar(&o.conc, "concurrency", 8, "concurrent API calls (and bare runc commands)")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "how long started containers idle before their memory is read")
	bin := flag.String("novacron", "", "novacron binary, the guests' shim (default: built into a temporary directory)")
	logFile := flag.String("log", "", "write the server's log (JSON, info and up) to this file (default: discarded)")
	flag.Parse()
	log.SetFlags(0)
	if os.Geteuid() != 0 {
		log.Fatal("containerbench needs root: containers run in their own cgroups and namespaces, as their own uids")
	}
	var err error
	if o.runc, err = exec.LookPath("runc"); err != nil {
		log.Fatalf("containerbench needs runc (apt-get install runc): %v", err)
	}
	if _, err := os.Stat(busybox); err != nil {
		log.Fatalf("containerbench needs %s (apt-get install busybox-static): %v", busybox, err)
	}
	for _, s := range strings.Split(*countsFlag, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c <= 0 {
			log.Fatalf("-counts %q: want positive numbers separated by commas", *countsFlag)
		}
		o.counts = append(o.counts, c)
	}
	if o.conc <= 0 || o.settle < 0 {
		log.Fatal("-concurrency must be positive, -settle not negative")
	}
	o.shim = *bin
	if o.shim == "" {
		tmp, err := os.MkdirTemp("", "containerbench-bin-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		o.shim = filepath.Join(tmp, "novacron")
		cmd := exec.Command("go", "build", "-o", o.shim, "github.com/novacron/novacron/cmd/novacron")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatalf("build novacron: %v", err)
		}
	} else if abs, err := filepath.Abs(o.shim); err == nil {
		o.shim = abs
	}
	logger := slog.New(slog.DiscardHandler)
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		logger = slog.New(slog.NewJSONHandler(f, nil))
	}

	// An interrupted run still deletes its containers: they would outlive it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	version, _ := exec.Command(o.runc, "--version").Output()
	vline, _, _ := strings.Cut(string(version), "\n")
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Printf("containerbench: counts %v, %d calls at a time, %d MiB and %d CPU per container, settle %s\n", o.counts, o.conc, memoryMB, cpus, o.settle)
	fmt.Printf("%s, kernel %s, cgroup %s, %d CPUs, load %s, shim %s\n\n", vline, unix.ByteSliceToString(uts.Release[:]),
		cgroupMode(), runtime.NumCPU(), loadavg(), o.shim)

	err = run(ctx, o, logger)
	fmt.Printf("\nload at the end: %s\n", loadavg())
	if err != nil {
		fmt.Printf("\nFAILED: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// bench is the control plane under test, the bare side, and what the run
// made.
type bench struct {
	o         options
	srv       *server.Server
	c         *benchkit.Client
	dataDir   string // the server's
	guestsDir string // the container driver's guest directories
	agentRunc string // the container driver's runc --root
	imageID   string

	bareDir    string
	bareRoot   string // the bare side's runc --root
	bareRootfs string // the plain unpack every bare container runs on
	bareParent string // the bare containers' cgroup parent, this run's own
	template   []byte // the config.json of a NovaCron guest

	ours   map[string]bool // every VM id of the run
	states *stateLog
}

func run(ctx context.Context, o options, logger *slog.Logger) (err error) {
	// Short: the guests' unix sockets live under it (108 bytes at most).
	dataDir, err := os.MkdirTemp("", "nb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	bareDir, err := os.MkdirTemp("", "nbb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bareDir)
	b := &bench{o: o, dataDir: dataDir, guestsDir: filepath.Join(dataDir, "agent", "container", "guests"),
		agentRunc: filepath.Join(dataDir, "agent", "container", "runc"), bareDir: bareDir,
		bareRoot: filepath.Join(bareDir, "runc"), bareRootfs: filepath.Join(bareDir, "rootfs"),
		bareParent: "ncbench-" + filepath.Base(bareDir), ours: map[string]bool{}}
	// The bare containers' inits become this process's children when
	// "runc run -d" returns, so that their exits are reaped at once (PID 1
	// may be slow to, and runc cannot remove the cgroup of an unreaped
	// process), as a shim's "runc run" reaps a NovaCron container's.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a subreaper: %w", err)
	}
	tarball, err := buildRootfs(b.bareRootfs)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}

	b.states = &stateLog{next: logger.Handler(), shared: &stateTimes{at: map[string]time.Time{}}}
	pw := "bench-admin-password"
	srv, err := server.Open(ctx, server.Config{
		DataDir: dataDir, Listen: "127.0.0.1:0", AdminPassword: pw,
		ShimCommand: []string{o.shim, "shim"}, Logger: slog.New(b.states),
	})
	if err != nil {
		return fmt.Errorf("open server: %w", err)
	}
	b.srv = srv
	b.c = &benchkit.Client{Base: srv.URL(), HC: &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: o.conc + 2, MaxConnsPerHost: o.conc + 2, IdleConnTimeout: time.Minute}}}
	defer func() {
		// Whatever a failed or interrupted run left goes before the server
		// does: containers would outlive it.
		b.cleanup()
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if cerr := srv.Close(cctx); cerr != nil && err == nil {
			err = fmt.Errorf("close server: %w", cerr)
		}
		// Nor may anything appear while the server shuts down.
		left := b.leftovers()
		printLeft("after the server closed", left)
		if len(left) > 0 && err == nil {
			err = fmt.Errorf("%d things left after the server closed", len(left))
		}
		b.unmountLeft()
		if rerr := b.removeBareCgroups(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := b.c.Login(ctx, pw); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := b.upload(ctx, tarball); err != nil {
		return fmt.Errorf("upload the rootfs: %w", err)
	}
	if err := b.warmUp(ctx); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}

	var runs []countRun
	for _, n := range o.counts {
		if ctx.Err() != nil {
			break
		}
		fmt.Printf("\n== %d containers\n", n)
		r := countRun{n: n}
		r.bare = b.bareRun(ctx, n)
		r.api = b.apiRun(ctx, n)
		r.left = b.leftovers()
		printLeft(fmt.Sprintf("after the %d containers were deleted", n), r.left)
		runs = append(runs, r)
	}
	printTables(runs)

	failed := false
	for _, r := range runs {
		failed = failed || r.bare.errors() > 0 || r.api.errors() > 0 || len(r.left) > 0
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case failed:
		return errors.New("errors or leftovers above")
	}
	return nil
}

// buildRootfs makes a busybox root file system in dir (the bare side's)
// and returns the same tree as a tarball (NovaCron's image).
func buildRootfs(dir string) ([]byte, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}); err != nil {
			return nil, err
		}
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), ModTime: mtime}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bb); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		return nil, err
	}
	for _, app := range []string{"sh", "sleep"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + app, Linkname: "busybox", Mode: 0o777, ModTime: mtime}); err != nil {
			return nil, err
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", app)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Whatever the umask: the guest's uid must enter and run them.
	if err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chmod(p, 0o755)
	}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// upload posts the rootfs with the idle command as its default.
func (b *bench) upload(ctx context.Context, tarball []byte) error {
	cmd, _ := json.Marshal(idleCommand)
	q := url.Values{"name": {"bench-busybox"}, "format": {"rootfs"}, "command": {string(cmd)}}
	var img struct {
		ID      string   `json:"id"`
		Command []string `json:"command"`
	}
	if err := b.c.Do(ctx, "POST", "/api/images?"+q.Encode(), "application/octet-stream", bytes.NewReader(tarball), http.StatusCreated, &img); err != nil {
		return err
	}
	b.imageID = img.ID
	note := "its default command " + strings.Join(img.Command, " ")
	if len(img.Command) == 0 {
		note = "the server kept no default command; the VMs name theirs anyway"
	}
	fmt.Printf("image %s: busybox rootfs, %d KiB tarball, %s\n", img.ID, len(tarball)>>10, note)
	return nil
}

// warmUp runs one container each way, untimed but for the first: its
// create unpacks the image into the agent's cache. The NovaCron guest's
// config.json becomes the bare containers' template. It also times what
// every NovaCron start does beside "runc run": a "runc delete -f" of a
// container runc does not know.
func (b *bench) warmUp(ctx context.Context) (err error) {
	fmt.Printf("\n== warm-up\n")
	t0 := time.Now()
	id, err := b.createVM(ctx, "warm-up")
	first := time.Since(t0)
	b.remember([]string{id})
	if id != "" {
		defer func() {
			if derr := b.deleteVM(ctx, id); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	if err != nil {
		return err
	}
	b.template, err = os.ReadFile(filepath.Join(b.guestsDir, id, "bundle", "config.json"))
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b.template, &spec); err != nil {
		return fmt.Errorf("the guest's config.json: %w", err)
	}
	if spec.Linux == nil || spec.Root == nil || spec.Process == nil {
		return errors.New("the guest's config.json has no linux, root or process section")
	}
	fmt.Printf("%-22s first container of the image (rootfs unpacked): create+start %s\n", "novacron", benchkit.Round(first))
	fmt.Printf("%-22s its config.json: uid %d, cgroupsPath %s, root %s; bare copies keep all but root, cgroupsPath and hostname\n",
		"", spec.Process.User.UID, spec.Linux.CgroupsPath, spec.Root.Path)
	if err := b.stopVM(ctx, id); err != nil {
		return err
	}

	if err := b.writeBundle("warm-up"); err != nil {
		return err
	}
	t0 = time.Now()
	if err := b.bareStart("warm-up"); err != nil {
		return err
	}
	bareFirst := time.Since(t0)
	if err := b.bareStop("warm-up"); err != nil {
		return err
	}
	if err := b.bareDelete("warm-up"); err != nil {
		return err
	}
	fmt.Printf("%-22s first runc run -d: %s\n", "bare runc", benchkit.Round(bareFirst))

	var ds []time.Duration
	for range 5 {
		t0 := time.Now()
		// runc says the container does not exist, as it does for a shim.
		_ = exec.Command(b.o.runc, "--root", b.bareRoot, "delete", "--force", "never-created").Run()
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	fmt.Printf("%-22s runc delete --force of an unknown container, as each shim runs before runc run: p50 %s\n", "", benchkit.Round(benchkit.Pct(ds, 50)))
	return nil
}

func (b *bench) remember(ids []string) {
	for _, id := range ids {
		if id != "" {
			b.ours[id] = true
		}
	}
}

// countRun is one count's runs, bare and NovaCron, and what was left.
type countRun struct {
	n         int
	bare, api sideRun
	left      []string
}

// sideRun is one side's phases and memory.
type sideRun struct {
	create, stop, del phase
	mem               memSample
	// The parts of NovaCron's create+start calls, from the server's log:
	// the call until the VM was created (API, database, the bundle: the
	// overlay mounted, config.json), and its start (the shim, runc).
	createPart, startPart []time.Duration
}

func (s sideRun) errors() int { return s.create.errors + s.stop.errors + s.del.errors + s.mem.errors }

// cycle is the wall time of the three phases per container.
func (s sideRun) cycle() time.Duration {
	if s.create.n == 0 {
		return 0
	}
	return (s.create.wall + s.stop.wall + s.del.wall) / time.Duration(s.create.n)
}

// memSample is the memory of one side's running containers, in bytes.
type memSample struct {
	containers               int   // containers measured
	ctrPSS, ctrCgroup        int64 // the containers' processes, their memory cgroups
	ctrProcs                 int
	shimPSS, runcPSS         int64 // NovaCron's supervisors; a bare side's leftover runcs
	shimRSS, runcRSS         int64
	shimPrivate, runcPrivate int64
	shims, runcs             int
	selfRSS0, selfRSS1       int64 // this process before and with the containers
	heap0, heap1             uint64
	goroutines0, goroutines1 int
	errors                   int
}

func (m memSample) per(v int64) int64 {
	if m.containers == 0 {
		return 0
	}
	return v / int64(m.containers)
}

// overhead is NovaCron's memory beside its containers: supervisors and the
// server's growth.
func (m memSample) overhead() int64 { return m.shimPSS + m.runcPSS + m.selfRSS1 - m.selfRSS0 }

func (m memSample) ratio(ctr int64) string {
	if ctr <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(ctr+m.overhead())/float64(ctr))
}

// bareRun runs n bundles with a bare runc: run -d, kill, delete.
func (b *bench) bareRun(ctx context.Context, n int) sideRun {
	var s sideRun
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("b%d-%03d", n, i)
		if err := b.writeBundle(ids[i]); err != nil {
			s.mem.errors++
			fmt.Printf("  bundle %s: %v\n", ids[i], err)
		}
	}
	name := "bare runc run -d"
	started := make([]bool, n)
	s.create = pool(ctx, "create+start", n, b.o.conc, func(i int) error {
		err := b.bareStart(ids[i])
		started[i] = err == nil
		return err
	})
	s.create.line(name)
	sleep(ctx, b.o.settle)
	s.mem = b.bareMemory(ids, started)
	s.mem.print(name)
	s.stop = pool(ctx, "stop", n, b.o.conc, func(i int) error { return b.bareStop(ids[i]) })
	s.stop.line(name)
	s.del = pool(ctx, "delete", n, b.o.conc, func(i int) error { return b.bareDelete(ids[i]) })
	s.del.line(name)
	return s
}

// writeBundle writes the bundle of bare container id: the template with
// the plain rootfs, a cgroup of this run's bare parent and id as hostname.
func (b *bench) writeBundle(id string) error {
	var spec specs.Spec
	if err := json.Unmarshal(b.template, &spec); err != nil {
		return err
	}
	spec.Root.Path = b.bareRootfs
	spec.Linux.CgroupsPath = "/" + b.bareParent + "/" + id
	spec.Hostname = id
	raw, err := json.MarshalIndent(&spec, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(b.bareDir, "bundles", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600)
}

// bareStart runs the container detached, as the shim runs it but for -d:
// runc returns once the container's init runs.
func (b *bench) bareStart(id string) error {
	dir := filepath.Join(b.bareDir, "bundles", id)
	// A file, not a pipe: the container keeps runc's output open.
	out, err := os.Create(filepath.Join(dir, "runc.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(b.o.runc, "--root", b.bareRoot, "run", "-d", "--bundle", dir,
		"--pid-file", filepath.Join(dir, "container.pid"), "--no-new-keyring", id)
	cmd.Stdout, cmd.Stderr, cmd.Dir = out, out, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("runc run -d %s: %v: %s", id, err, benchkit.LastLine(msg))
	}
	return nil
}

// bareStop sends the container's init SIGTERM through runc, waits for it
// to exit and reaps it.
func (b *bench) bareStop(id string) error { return b.bareSignal(id, "TERM", 30*time.Second) }

// bareSignal has runc send sig to a bare container's init, waits up to
// timeout for the init to exit, and reaps it: it is this process's child,
// this process being a subreaper.
func (b *bench) bareSignal(id, sig string, timeout time.Duration) error {
	pid, err := readPid(filepath.Join(b.bareDir, "bundles", id, "container.pid"))
	if err != nil {
		return err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of %s's init %d: %w", id, pid, err)
	}
	defer unix.Close(fd)
	if out, err := exec.Command(b.o.runc, "--root", b.bareRoot, "kill", id, sig).CombinedOutput(); err != nil {
		_, _ = reap(fd, pid, 0) // it may have exited already
		return fmt.Errorf("runc kill %s %s: %v: %s", id, sig, err, benchkit.LastLine(out))
	}
	exited, err := reap(fd, pid, timeout)
	if err != nil {
		return fmt.Errorf("%s's init %d: %w", id, pid, err)
	}
	if !exited {
		return fmt.Errorf("%s's init %d did not exit within %s of SIG%s", id, pid, timeout, sig)
	}
	return nil
}

// reap waits up to timeout for the process of pidfd fd to exit (the
// pidfd turns readable, whoever its parent is), then reaps it if it is
// this process's child.
func reap(fd, pid int, timeout time.Duration) (exited bool, err error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(fds, max(int(time.Until(deadline).Milliseconds()), 0))
		switch {
		case n > 0:
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil && !errors.Is(err, unix.ECHILD) {
				return true, fmt.Errorf("reap: %w", err)
			}
			return true, nil
		case err != nil && !errors.Is(err, unix.EINTR):
			return false, fmt.Errorf("wait: %w", err)
		case !time.Now().Before(deadline):
			return false, nil
		}
	}
}

func (b *bench) bareDelete(id string) error {
	if out, err := exec.Command(b.o.runc, "--root", b.bareRoot, "delete", "--force", id).CombinedOutput(); err != nil {
		return fmt.Errorf("runc delete %s: %v: %s", id, err, benchkit.LastLine(out))
	}
	return nil
}

// bareMemory reads the memory of the bare containers, and of whatever
// runc left running beside them (its command line names the bare
// directory).
func (b *bench) bareMemory(ids []string, started []bool) memSample {
	var m memSample
	for i, id := range ids {
		if !started[i] {
			continue
		}
		pids, pss, usage, err := containerMemory("/" + b.bareParent + "/" + id)
		if err != nil {
			m.errors++
			fmt.Printf("  container %s: %v\n", id, err)
			continue
		}
		m.containers++
		m.ctrProcs += len(pids)
		m.ctrPSS += pss
		m.ctrCgroup += usage
	}
	for _, p := range processes() {
		if strings.Contains(p.cmdline, b.bareDir) {
			m.runcs++
			if _, pss, _, err := smapsRollup(p.pid); err == nil {
				m.runcPSS += pss
			}
		}
	}
	return m
}

// apiRun creates and starts n containers through the API, measures them
// idle, stops and deletes them.
func (b *bench) apiRun(ctx context.Context, n int) sideRun {
	var s sideRun
	name := "novacron sqlite"
	rss0, heap0, g0 := benchkit.SelfMemory(b.c.HC)
	ids := make([]string, n)
	calls := make([]time.Time, n)
	s.create = pool(ctx, "create+start", n, b.o.conc, func(i int) error {
		calls[i] = time.Now()
		id, err := b.createVM(ctx, fmt.Sprintf("c%d-%03d", n, i))
		ids[i] = id
		return err
	})
	b.remember(ids)
	s.create.line(name)
	for i, id := range ids {
		created, starting, running := b.states.at(id, "creating", "stopped"), b.states.at(id, "stopped", "starting"), b.states.at(id, "starting", "running")
		if id != "" && !created.IsZero() && !starting.IsZero() && !running.IsZero() {
			s.createPart = append(s.createPart, created.Sub(calls[i]))
			s.startPart = append(s.startPart, running.Sub(starting))
		}
	}
	slices.Sort(s.createPart)
	slices.Sort(s.startPart)
	if len(s.startPart) > 0 {
		fmt.Printf("%-22s %-12s create (API, database, bundle) p50 %-9s p99 %-9s start (shim, runc) p50 %-9s p99 %s\n", "", "  its parts:",
			benchkit.Round(benchkit.Pct(s.createPart, 50)), benchkit.Round(benchkit.Pct(s.createPart, 99)), benchkit.Round(benchkit.Pct(s.startPart, 50)), benchkit.Round(benchkit.Pct(s.startPart, 99)))
	}
	sleep(ctx, b.o.settle)
	s.mem = b.apiMemory(ids)
	s.mem.selfRSS0, s.mem.heap0, s.mem.goroutines0 = rss0, heap0, g0
	s.mem.selfRSS1, s.mem.heap1, s.mem.goroutines1 = benchkit.SelfMemory(b.c.HC)
	s.mem.print(name)
	s.stop = pool(ctx, "stop", n, b.o.conc, func(i int) error {
		if ids[i] == "" {
			return errors.New("not created")
		}
		return b.stopVM(ctx, ids[i])
	})
	s.stop.line(name)
	s.del = pool(ctx, "delete", n, b.o.conc, func(i int) error {
		if ids[i] == "" {
			return errors.New("not created")
		}
		return b.deleteVM(ctx, ids[i])
	})
	s.del.line(name)
	return s
}

// apiMemory reads the memory of NovaCron's containers and of their
// supervisors: each shim (its pid file) and its other descendants (the
// foreground "runc run"), the container's processes being those of its
// cgroup.
func (b *bench) apiMemory(ids []string) memSample {
	var m memSample
	procs := processes()
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		pids, pss, usage, err := containerMemory(guestCgroupsPath(id))
		if err != nil {
			m.errors++
			fmt.Printf("  container %s: %v\n", id, err)
			continue
		}
		shim, err := readPid(filepath.Join(b.guestsDir, id, "shim.pid"))
		if err != nil {
			m.errors++
			fmt.Printf("  container %s: shim: %v\n", id, err)
			continue
		}
		m.containers++
		m.ctrProcs += len(pids)
		m.ctrPSS += pss
		m.ctrCgroup += usage
		srss, spss, spriv, err := smapsRollup(shim)
		if err != nil {
			m.errors++
			fmt.Printf("  container %s: shim %d: %v\n", id, shim, err)
			continue
		}
		m.shims++
		m.shimPSS += spss
		m.shimRSS += srss
		m.shimPrivate += spriv
		for _, pid := range descendants(children, shim) {
			if slices.Contains(pids, pid) {
				continue
			}
			if rrss, rpss, rpriv, err := smapsRollup(pid); err == nil {
				m.runcs++
				m.runcPSS += rpss
				m.runcRSS += rrss
				m.runcPrivate += rpriv
			}
		}
	}
	// Every process of the server's data directory is a shim or a runc of
	// a guest measured above, but for a passing one (the agent's stats
	// collector runs "runc events"): a second look settles it.
	k := countMatching(procs, b.dataDir)
	if k != m.shims+m.runcs {
		time.Sleep(100 * time.Millisecond)
		k = countMatching(processes(), b.dataDir)
	}
	if k != m.shims+m.runcs {
		m.errors++
		fmt.Printf("  %d processes name %s, %d shims and runcs were measured\n", k, b.dataDir, m.shims+m.runcs)
	}
	return m
}

// guestCgroupsPath is the cgroup a NovaCron container runs in (the
// process driver's CgroupsPath with the server's default parent).
func guestCgroupsPath(id string) string { return "/" + guestCgroupParent + "/" + id }

func (m memSample) print(target string) {
	if m.containers == 0 {
		fmt.Printf("%-22s no container measured, %d errors\n", target, m.errors)
		return
	}
	k := int64(m.containers)
	fmt.Printf("%-22s %d containers idle (%.1f processes each): PSS %s, cgroup memory %s per container\n", target,
		m.containers, float64(m.ctrProcs)/float64(m.containers), size(m.ctrPSS/k), size(m.ctrCgroup/k))
	if m.shims > 0 {
		fmt.Printf("%-22s %d shims, per container: PSS %s (RSS %s, private %s); %d runc run: PSS %s (RSS %s, private %s)\n", "",
			m.shims, size(m.shimPSS/k), size(m.shimRSS/k), size(m.shimPrivate/k),
			m.runcs, size(m.runcPSS/k), size(m.runcRSS/k), size(m.runcPrivate/k))
		fmt.Printf("%-22s this process (server): RSS %s -> %s, Go heap %s -> %s, goroutines %d -> %d: %s RSS per container\n", "",
			size(m.selfRSS0), size(m.selfRSS1), size(int64(m.heap0)), size(int64(m.heap1)), m.goroutines0, m.goroutines1,
			size((m.selfRSS1-m.selfRSS0)/k))
	} else {
		fmt.Printf("%-22s processes left beside the containers: %d (PSS %s)\n", "", m.runcs, size(m.runcPSS))
	}
}

// printTables prints the figures as the README's tables.
func printTables(runs []countRun) {
	fmt.Printf("\n| containers | target | create+start p50 / p99 | stop p50 / p99 | delete p50 / p99 | whole cycle per container | errors |\n")
	fmt.Printf("|---:|---|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		for _, t := range []struct {
			name string
			s    sideRun
		}{{"bare runc run -d", r.bare}, {"novacron sqlite", r.api}} {
			fmt.Printf("| %d | %s | %s | %s | %s | %s | %d |\n", r.n, t.name, t.s.create.quantiles(), t.s.stop.quantiles(),
				t.s.del.quantiles(), benchkit.Round(t.s.cycle()), t.s.errors())
		}
		q := func(a, b phase) string {
			return ratio(a.pct(50), b.pct(50)) + " / " + ratio(a.pct(99), b.pct(99))
		}
		fmt.Printf("| %d | novacron / bare | %s | %s | %s | %s | |\n", r.n, q(r.api.create, r.bare.create),
			q(r.api.stop, r.bare.stop), q(r.api.del, r.bare.del), ratio(r.api.cycle(), r.bare.cycle()))
	}

	fmt.Printf("\ncreate+start by part, p50 / p99:\n")
	fmt.Printf("| containers | bare runc run -d | novacron create (API, database, bundle) | novacron start (shim, runc run) | start / bare runc run -d |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		q := func(s []time.Duration) string {
			if len(s) == 0 {
				return "–"
			}
			return benchkit.Round(benchkit.Pct(s, 50)).String() + " / " + benchkit.Round(benchkit.Pct(s, 99)).String()
		}
		fmt.Printf("| %d | %s | %s | %s | %s / %s |\n", r.n, r.bare.create.quantiles(), q(r.api.createPart), q(r.api.startPart),
			ratio(benchkit.Pct(r.api.startPart, 50), r.bare.create.pct(50)), ratio(benchkit.Pct(r.api.startPart, 99), r.bare.create.pct(99)))
	}

	fmt.Printf("\nper container:\n")
	fmt.Printf("| containers | container PSS bare / novacron | container cgroup memory bare / novacron | shim PSS | runc run PSS | server RSS growth | novacron overhead | bare runc overhead | (container + overhead) / container, PSS / cgroup |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		a, bm := r.api.mem, r.bare.mem
		fmt.Printf("| %d | %s / %s | %s / %s | %s | %s | %s | %s | %s (%d processes) | %s / %s |\n", r.n,
			size(bm.per(bm.ctrPSS)), size(a.per(a.ctrPSS)), size(bm.per(bm.ctrCgroup)), size(a.per(a.ctrCgroup)),
			size(a.per(a.shimPSS)), size(a.per(a.runcPSS)), size(a.per(a.selfRSS1-a.selfRSS0)), size(a.per(a.overhead())),
			size(bm.per(bm.runcPSS)), bm.runcs, a.ratio(a.ctrPSS), a.ratio(a.ctrCgroup))
	}
}

func (b *bench) createVM(ctx context.Context, name string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"name": name, "driver": "container", "image_id": b.imageID, "cpus": cpus, "memory_mb": memoryMB, "start": true,
		"config": map[string]any{"command": idleCommand},
	})
	var v struct{ ID, State string }
	if err := b.c.Do(ctx, "POST", "/api/vm/vms?wait=1&timeout=300s", "application/json", bytes.NewReader(body), http.StatusOK, &v); err != nil {
		return "", err
	}
	if v.State != "running" {
		return v.ID, b.c.Explain(ctx, v.ID, fmt.Errorf("vm %s is %s, not running", v.ID, v.State))
	}
	return v.ID, nil
}

func (b *bench) stopVM(ctx context.Context, id string) error {
	var v struct{ State string }
	if err := b.c.Do(ctx, "POST", "/api/vm/vms/"+id+"/stop?wait=1&timeout=300s", "", nil, http.StatusOK, &v); err != nil {
		return b.c.Explain(ctx, id, err)
	}
	if v.State != "stopped" {
		return fmt.Errorf("vm %s is %s, not stopped", id, v.State)
	}
	return nil
}

func (b *bench) deleteVM(ctx context.Context, id string) error {
	return b.c.Explain(ctx, id, b.c.Do(ctx, "DELETE", "/api/vm/vms/"+id+"?wait=1&timeout=300s", "", nil, http.StatusNoContent, nil))
}

// leftovers lists what remains of the run's containers: processes of the
// server's data directory or the bare one (shims, runcs) or in the run's
// cgroups, containers runc still knows, mounts, cgroups and guest
// directories. Others' guests (a test running beside) are not the run's.
//
// An exited process waits for its parent to reap it. While all that is
// left is such zombies, it waits for them, up to 5 s, and says how long.
func (b *bench) leftovers() []string {
	t0 := time.Now()
	left, zombies := b.scanLeftovers()
	first := zombies
	for zombies > 0 && zombies == len(left) && time.Since(t0) < 5*time.Second {
		time.Sleep(50 * time.Millisecond)
		left, zombies = b.scanLeftovers()
	}
	if first > 0 && len(left) == 0 {
		fmt.Printf("(waited %s for %d exited container processes to be reaped)\n", benchkit.Round(time.Since(t0)), first)
	}
	return left
}

// scanLeftovers is one look for leftovers; zombies of them are exited
// processes.
func (b *bench) scanLeftovers() (out []string, zombies int) {
	self := os.Getpid()
	for _, p := range processes() {
		if p.pid == self {
			continue
		}
		desc := fmt.Sprintf("process %d (%c): %s", p.pid, p.state, p.cmdline)
		if strings.Contains(p.cmdline, b.dataDir) || strings.Contains(p.cmdline, b.bareDir) {
			out = append(out, desc)
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.pid))
		for _, line := range strings.Split(string(cg), "\n") {
			_, path, _ := strings.Cut(line[strings.IndexByte(line, ':')+1:], ":")
			dir, id := filepath.Split(strings.TrimSuffix(path, " (deleted)"))
			if dir == "/"+b.bareParent+"/" || dir == "/"+guestCgroupParent+"/" && b.ours[id] {
				out = append(out, desc+" in cgroup "+path)
				if p.state == 'Z' {
					zombies++
				}
				break
			}
		}
	}
	for _, root := range []string{b.agentRunc, b.bareRoot} {
		if _, err := os.Stat(root); err != nil {
			continue
		}
		raw, err := exec.Command(b.o.runc, "--root", root, "list", "-q").Output()
		if err != nil {
			out = append(out, fmt.Sprintf("runc list --root %s: %v", root, err))
		}
		for _, id := range strings.Fields(string(raw)) {
			out = append(out, fmt.Sprintf("container %s in runc root %s", id, root))
		}
	}
	for _, m := range b.mounts() {
		out = append(out, "mount "+m)
	}
	var cgs []string
	for id := range b.ours {
		c, _ := filepath.Glob("/sys/fs/cgroup/*/" + guestCgroupParent + "/" + id)
		cgs = append(cgs, c...)
		c, _ = filepath.Glob("/sys/fs/cgroup/" + guestCgroupParent + "/" + id)
		cgs = append(cgs, c...)
	}
	for _, pattern := range []string{"/sys/fs/cgroup/*/" + b.bareParent + "/*", "/sys/fs/cgroup/" + b.bareParent + "/*"} {
		c, _ := filepath.Glob(pattern)
		for _, p := range c {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				cgs = append(cgs, p)
			}
		}
	}
	slices.Sort(cgs)
	for _, c := range cgs {
		out = append(out, "cgroup "+c)
	}
	ents, _ := os.ReadDir(b.guestsDir)
	for _, e := range ents {
		out = append(out, "guest directory "+filepath.Join(b.guestsDir, e.Name()))
	}
	return out, zombies
}

// mounts are the mount points under the server's data directory or the
// bare one.
func (b *bench) mounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if mp := fields[4]; strings.HasPrefix(mp, b.dataDir+"/") || strings.HasPrefix(mp, b.bareDir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

func printLeft(when string, left []string) {
	fmt.Printf("left %s: %d\n", when, len(left))
	for _, s := range left {
		fmt.Printf("  LEFT %s\n", s)
	}
}

// cleanup stops and deletes whatever guests the node and the bare runc
// still have, so that a failed or interrupted run leaves no container.
func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ag := b.srv.Agent()
	guests, err := ag.ListGuests(ctx)
	if err != nil {
		fmt.Printf("  cleanup: list guests: %v\n", err)
	}
	for _, g := range guests {
		_ = ag.StopGuest(ctx, g.ID, time.Second, true)
		if err := ag.DeleteGuest(ctx, g.ID); err != nil {
			fmt.Printf("  cleanup: delete guest %s: %v\n", g.ID, err)
		}
	}
	raw, _ := exec.Command(b.o.runc, "--root", b.bareRoot, "list", "-q").Output()
	bare := strings.Fields(string(raw))
	for _, id := range bare {
		_ = b.bareSignal(id, "KILL", 5*time.Second)
		if err := b.bareDelete(id); err != nil {
			fmt.Printf("  cleanup: %v\n", err)
		}
	}
	if len(guests)+len(bare) > 0 {
		fmt.Printf("  cleanup: %d guests deleted through the agent, %d bare containers with runc\n", len(guests), len(bare))
	}
}

// unmountLeft detaches what is still mounted under the run's directories,
// so that removing them does not reach into a mount.
func (b *bench) unmountLeft() {
	ms := b.mounts()
	slices.Reverse(ms)
	for _, m := range ms {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			fmt.Printf("  cleanup: unmount %s: %v\n", m, err)
		}
	}
}

// removeBareCgroups removes the run's bare cgroup parent; runc removes the
// containers' cgroups, never their parents.
func (b *bench) removeBareCgroups() error {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + b.bareParent)
	if _, err := os.Stat("/sys/fs/cgroup/" + b.bareParent); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup/"+b.bareParent)
	}
	var errs []error
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupMode names the host's cgroup layout.
func cgroupMode() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "v2"
	}
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
		return "v1 (hybrid)"
	}
	return "v1"
}

// containerMemory returns the processes of a container's cgroup, the sum
// of their PSS and the memory the cgroup is charged (v1
// memory.usage_in_bytes, v2 memory.current: pages of its processes, page
// cache it brought in, its tmpfs files, kernel memory).
func containerMemory(cgroupsPath string) (pids []int, pss, usage int64, err error) {
	dir, usageFile := filepath.Join("/sys/fs/cgroup/memory", cgroupsPath), "memory.usage_in_bytes"
	if cgroupMode() == "v2" {
		dir, usageFile = filepath.Join("/sys/fs/cgroup", cgroupsPath), "memory.current"
	}
	raw, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, 0, 0, err
	}
	for _, f := range strings.Fields(string(raw)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		_, p, _, err := smapsRollup(pid)
		if err != nil {
			return nil, 0, 0, err
		}
		pids = append(pids, pid)
		pss += p
	}
	if len(pids) == 0 {
		return nil, 0, 0, fmt.Errorf("no process in %s", dir)
	}
	raw, err = os.ReadFile(filepath.Join(dir, usageFile))
	if err != nil {
		return nil, 0, 0, err
	}
	usage, err = strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	return pids, pss, usage, err
}

type proc struct {
	pid, ppid int
	state     byte
	cmdline   string
}

// processes lists the host's processes.
func processes() []proc {
	var out []proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, proc{pid: pid, ppid: ppid, state: f[0][0],
			cmdline: strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))})
	}
	return out
}

func descendants(children map[int][]int, pid int) []int {
	var out []int
	for _, c := range children[pid] {
		out = append(out, c)
		out = append(out, descendants(children, c)...)
	}
	return out
}

func countMatching(procs []proc, s string) int {
	k := 0
	for _, p := range procs {
		if strings.Contains(p.cmdline, s) {
			k++
		}
	}
	return k
}

func readPid(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %s: %q", path, raw)
	}
	return pid, nil
}

// smapsRollup returns a process's resident, proportional and private set
// sizes in bytes.
func smapsRollup(pid int) (rss, pss, private int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	rss, pss = -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = v << 10
		case "Pss:":
			pss = v << 10
		case "Private_Clean:", "Private_Dirty:":
			private += v << 10
		}
	}
	if rss < 0 || pss < 0 {
		return 0, 0, 0, fmt.Errorf("no Rss or Pss in /proc/%d/smaps_rollup", pid)
	}
	return rss, pss, private, nil
}

// phase is the timing of one phase: its wall time and each call's latency.
type phase struct {
	name   string
	n      int
	wall   time.Duration
	lats   []time.Duration // of the calls that succeeded, sorted
	errors int
}

func (p phase) pct(q int) time.Duration { return benchkit.Pct(p.lats, q) }

func (p phase) rate() float64 {
	if p.wall <= 0 {
		return 0
	}
	return float64(p.n) / p.wall.Seconds()
}

func (p phase) quantiles() string {
	if len(p.lats) == 0 {
		return "–"
	}
	return benchkit.Round(p.pct(50)).String() + " / " + benchkit.Round(p.pct(99)).String()
}

// line prints the phase as it ends.
func (p phase) line(target string) {
	fmt.Printf("%-22s %-12s n %3d  wall %9s  %7.1f/s  p50 %-9s p99 %-9s errors %d\n", target, p.name, p.n,
		benchkit.Round(p.wall), p.rate(), benchkit.Round(p.pct(50)), benchkit.Round(p.pct(99)), p.errors)
}

// pool runs f(0..n-1) on conc workers and times the whole and each call.
// A call's error is printed (the first few) and counted.
func pool(ctx context.Context, name string, n, conc int, f func(i int) error) phase {
	lats := make([]time.Duration, n)
	ok := make([]bool, n)
	var (
		next, errs, logged atomic.Int64
		wg                 sync.WaitGroup
	)
	t0 := time.Now()
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c0 := time.Now()
				err := f(i)
				lats[i] = time.Since(c0)
				if err != nil {
					errs.Add(1)
					if logged.Add(1) <= 5 {
						fmt.Printf("  %s #%d: %v\n", name, i, err)
					}
					continue
				}
				ok[i] = true
			}
		}()
	}
	wg.Wait()
	p := phase{name: name, n: n, wall: time.Since(t0), errors: int(errs.Load())}
	for i, l := range lats {
		if ok[i] {
			p.lats = append(p.lats, l)
		}
	}
	// Calls never made, the run being interrupted, are errors too.
	if made := int(min(next.Load(), int64(n))); made < n {
		p.errors += n - made
	}
	slices.Sort(p.lats)
	return p
}

func ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(a)/float64(b))
}

// size prints bytes in KiB below 10 MiB, else in MiB.
func size(b int64) string {
	if b > -10<<20 && b < 10<<20 {
		return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// stateLog is the server's log handler: it passes records on to next and
// keeps when each VM changed state ("vm state" records), for the parts of
// a create+start.
type stateLog struct {
	next   slog.Handler
	shared *stateTimes
}

type stateTimes struct {
	mu sync.Mutex
	at map[string]time.Time // vm id, from and to state: the first time
}

func (h *stateLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *stateLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "vm state" {
		var vm, from, to string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "vm":
				vm = a.Value.String()
			case "from":
				from = a.Value.String()
			case "to":
				to = a.Value.String()
			}
			return true
		})
		k := vm + " " + from + " " + to
		h.shared.mu.Lock()
		if _, ok := h.shared.at[k]; !ok {
			h.shared.at[k] = r.Time
		}
		h.shared.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *stateLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &stateLog{next: h.next.WithAttrs(as), shared: h.shared}
}

func (h *stateLog) WithGroup(name string) slog.Handler {
	return &stateLog{next: h.next.WithGroup(name), shared: h.shared}
}

// at returns when VM id first went from one state to another (zero when
// it did not).
func (h *stateLog) at(id, from, to string) time.Time {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	return h.shared.at[id+" "+from+" "+to]
}
