// Command qemubench measures what NovaCron adds to QEMU guests, each figure
// beside its baseline in the same run, with the test guest of
// scripts/qemu-test-guest.sh (a kernel and a busybox initramfs that prints
// NOVACRON-BOOT-OK on its serial console once booted):
//
//   - Boot latency: from the create call (POST /api/vm/vms?wait=1 with
//     start, driver qemu, the kernel and initrd uploaded as images) until
//     the console (GET /api/vm/vms/{id}/logs) shows the marker, against the
//     same guest booted by a bare qemu-system-x86_64 with an equivalent
//     command line, timed until the marker is in its serial file. -n runs
//     of each, alternating; p50 and max, and their ratios.
//   - Memory of idle guests: for each count of -counts, that many guests
//     started through the API (-concurrency booting at once), all booted
//     and left to settle; then the RSS and PSS of their QEMUs per guest
//     (the baseline: QEMU's own memory) and the growth of this process's
//     RSS, Go heap and goroutines per guest (the server runs in this
//     process: API, VM service, agent, driver; a qemu guest has no other
//     process of NovaCron's).
//
// After each phase it deletes the guests through the API and checks that no
// QEMU and no directory of them is left. It needs root (guests run as their
// own uids) and qemu-system-x86_64. The accelerator is -accel; auto uses KVM
// when a KVM boot of the test guest works, else TCG, and both sides use the
// one chosen.
//
//	go run ./bench/qemubench -n 5 -counts 1,10,25 -memory-mb 96 -concurrency 4 [-guest-dir DIR] [-accel auto|kvm|tcg]
package main

import (
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/novacron/novacron/bench/internal/benchkit"
	"github.com/novacron/novacron/internal/server"
)

// marker is the line the test guest prints once booted.
const marker = "NOVACRON-BOOT-OK"

const qemuBinary = "qemu-system-x86_64"

type options struct {
	n           int
	counts      []int
	memoryMB    int
	bootMemMB   int
	conc        int
	accel       string
	kernel      string
	initrd      string
	poll        time.Duration
	settle      time.Duration
	bootTimeout time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 5, "boot latency runs of each side")
	countsFlag := flag.String("counts", "1,10,25", "numbers of idle guests whose memory is measured, one after the other")
	flag.IntVar(&o.memoryMB, "memory-mb", 96, "memory of each idle guest in MiB (the test guest's Debian kernel needs about 88)")
	flag.IntVar(&o.bootMemMB, "boot-memory-mb", 128, "memory of the guest in the boot latency runs, in MiB")
	flag.IntVar(&o.conc, "concurrency", 4, "guests created and booting at once in the memory phase")
	guestDir := flag.String("guest-dir", envOr("NOVACRON_TEST_GUEST_DIR", "/var/cache/novacron-test-guest"), "the test guest built by scripts/qemu-test-guest.sh DIR")
	flag.StringVar(&o.accel, "accel", "auto", "accelerator of both sides: auto (KVM when a KVM boot works, else TCG), kvm or tcg")
	flag.DurationVar(&o.poll, "poll", 50*time.Millisecond, "how often both sides look for the boot marker")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "how long booted guests idle before their memory is read")
	flag.DurationVar(&o.bootTimeout, "boot-timeout", 10*time.Minute, "longest wait for a boot marker")
	logFile := flag.String("log", "", "write the server's log (JSON, info and up) to this file (default: discarded)")
	flag.Parse()
	log.SetFlags(0)
	if os.Geteuid() != 0 {
		log.Fatal("qemubench needs root: qemu guests run as their own uids")
	}
	if _, err := exec.LookPath(qemuBinary); err != nil {
		log.Fatalf("qemubench needs %s: %v", qemuBinary, err)
	}
	for _, s := range strings.Split(*countsFlag, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c <= 0 {
			log.Fatalf("-counts %q: want positive numbers separated by commas", *countsFlag)
		}
		o.counts = append(o.counts, c)
	}
	if o.n <= 0 || o.conc <= 0 || o.memoryMB < 16 || o.bootMemMB < 16 || o.poll <= 0 {
		log.Fatal("-n and -concurrency must be positive, -memory-mb and -boot-memory-mb at least 16, -poll positive")
	}
	o.kernel, o.initrd = filepath.Join(*guestDir, "vmlinuz"), filepath.Join(*guestDir, "initramfs.gz")
	for _, f := range []string{o.kernel, o.initrd} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			log.Fatalf("the test guest is missing (%s); build it with scripts/qemu-test-guest.sh %s", f, *guestDir)
		}
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

	// An interrupted run still deletes its guests: they are daemons that
	// would outlive it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	accel, why := resolveAccel(ctx, o)
	o.accel = accel
	fmt.Printf("qemubench: accel %s (%s), %d boot runs of %d MiB, idle guests %v of %d MiB, %d booting at once, guest %s\n\n",
		o.accel, why, o.n, o.bootMemMB, o.counts, o.memoryMB, o.conc, *guestDir)

	if err := run(ctx, o, logger); err != nil {
		fmt.Printf("\nFAILED: %v\n", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// resolveAccel returns the accelerator of the run and why. The driver's own
// auto takes KVM when /dev/kvm opens; a KVM that opens but cannot run the
// guest (nested virtualization) would then fail both sides, so auto here
// boots the guest with KVM once to see.
func resolveAccel(ctx context.Context, o options) (string, string) {
	if o.accel != "auto" {
		return o.accel, "as asked"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg", "no usable /dev/kvm"
	}
	f.Close()
	d, err := bareBoot(ctx, o, "kvm", o.bootMemMB, time.Minute)
	if err != nil {
		return "tcg", "/dev/kvm opens but a KVM boot failed: " + err.Error()
	}
	return "kvm", fmt.Sprintf("a KVM boot took %s", benchkit.Round(d))
}

// bareArgs is QEMU's command line for the bare baseline: the guest's
// machine as the driver's buildArgs makes it (q35, accelerator, one vCPU,
// memory, virtio-net on user networking, direct kernel boot, serial
// console), with the serial port in a plain file and without what the
// driver needs to manage a daemon (the QMP monitors, the console socket,
// pvpanic, -runas, -daemonize, -sandbox, the pid file).
func bareArgs(accel, kernel, initrd string, memMB int, serial string) []string {
	args := []string{"-nodefaults", "-no-user-config", "-machine", "q35,accel=" + accel}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	return append(args,
		"-smp", "1", "-m", strconv.Itoa(memMB), "-display", "none", "-no-shutdown",
		"-serial", "file:"+serial,
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0",
		"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,id=net0dev",
	)
}

// bareBoot boots the guest with a bare QEMU and returns the time from its
// start until the marker is in its serial output. QEMU is killed after.
func bareBoot(ctx context.Context, o options, accel string, memMB int, timeout time.Duration) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "qemubench-bare-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	serial := filepath.Join(dir, "serial.log")
	var stderr bytes.Buffer
	cmd := exec.Command(qemuBinary, bareArgs(accel, o.kernel, o.initrd, memMB, serial)...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(o.poll)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(serial)
		if bytes.Contains(b, []byte(marker)) {
			return time.Since(t0), nil
		}
		if err := consoleFailure(b); err != nil {
			return 0, err
		}
		select {
		case err := <-done:
			done <- err // for the deferred wait
			return 0, fmt.Errorf("qemu exited before the marker (%v): %s", err, benchkit.LastLine(stderr.Bytes()))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no boot marker after %s; console ends %q", timeout, benchkit.LastLine(b))
		}
	}
}

// consoleFailure reports a guest whose console shows that it will never
// boot.
func consoleFailure(console []byte) error {
	if i := bytes.Index(console, []byte("Kernel panic")); i >= 0 {
		return fmt.Errorf("the guest panicked: %q", benchkit.LastLine(console[i:min(len(console), i+200)]))
	}
	return nil
}

// bench is the control plane under test and what it was given.
type bench struct {
	o        options
	srv      *server.Server
	dataDir  string
	qemuDir  string // the qemu driver's guest directories
	c        *benchkit.Client
	kid, iid string
}

func run(ctx context.Context, o options, logger *slog.Logger) (err error) {
	// Short: the guests' unix sockets live under it (108 bytes at most).
	dir, err := os.MkdirTemp("", "nq")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pw := "bench-admin-password"
	srv, err := server.Open(ctx, server.Config{
		DataDir: dir, Listen: "127.0.0.1:0", AdminPassword: pw,
		QEMUAccel: o.accel, StopTimeout: 60 * time.Second, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("open server: %w", err)
	}
	b := &bench{o: o, srv: srv, dataDir: dir, qemuDir: filepath.Join(dir, "agent", "qemu"),
		c: &benchkit.Client{Base: srv.URL(), HC: &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
			MaxIdleConnsPerHost: o.conc + 2, IdleConnTimeout: time.Minute}}}}
	defer func() {
		// Whatever a failed or interrupted run left goes before the
		// server does; the guests would outlive it.
		cleanup(srv)
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if cerr := srv.Close(cctx); cerr != nil && err == nil {
			err = fmt.Errorf("close server: %w", cerr)
		}
		if left := qemusUnder(dir); len(left) > 0 && err == nil {
			err = fmt.Errorf("QEMUs left after the server closed: %v", left)
		}
	}()
	if err := b.c.Login(ctx, pw); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if b.kid, err = upload(ctx, b.c, o.kernel, "bench-kernel", "kernel"); err != nil {
		return fmt.Errorf("upload kernel: %w", err)
	}
	if b.iid, err = upload(ctx, b.c, o.initrd, "bench-initrd", "initrd"); err != nil {
		return fmt.Errorf("upload initrd: %w", err)
	}

	lat := b.latency(ctx)
	mems := []memRun{}
	for _, n := range o.counts {
		if ctx.Err() != nil {
			break
		}
		mems = append(mems, b.memory(ctx, n))
	}

	accel := o.accel
	bareName := "bare " + qemuBinary + " (" + accel + ")"
	apiName := "novacron qemu (" + accel + ", sqlite)"
	fmt.Printf("\n| target | runs | create+start p50 | boot marker p50 | boot marker max | p50 vs bare | max vs bare | errors |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Printf("| %s | %d | – | %s | %s | 1 | 1 | %d |\n", bareName, len(lat.bare), benchkit.Round(benchkit.Pct(lat.bare, 50)), benchkit.Round(benchkit.Pct(lat.bare, 100)), lat.bareErrors)
	fmt.Printf("| %s | %d | %s | %s | %s | %s | %s | %d |\n", apiName, len(lat.api), benchkit.Round(benchkit.Pct(lat.create, 50)),
		benchkit.Round(benchkit.Pct(lat.api, 50)), benchkit.Round(benchkit.Pct(lat.api, 100)), ratio(benchkit.Pct(lat.api, 50), benchkit.Pct(lat.bare, 50)),
		ratio(benchkit.Pct(lat.api, 100), benchkit.Pct(lat.bare, 100)), lat.apiErrors)
	fmt.Printf("\n| guests | guest RAM | QEMU RSS per guest | QEMU PSS per guest | novacron RSS growth per guest | Go heap growth per guest | goroutines per guest | (QEMU PSS + novacron) / QEMU PSS | errors | QEMUs left |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range mems {
		fmt.Printf("| %d | %d MiB | %s | %s | %s | %s | %.1f | %.3f | %d | %d |\n", m.n, o.memoryMB, mib(m.qemuRSS/int64(m.n)),
			mib(m.qemuPSS/int64(m.n)), kib(m.selfRSSGrowth()/int64(m.n)), kib(m.heapGrowth()/int64(m.n)),
			float64(m.goroutines1-m.goroutines0)/float64(m.n), m.ratio(), m.errors, len(m.left))
	}

	failed := lat.bareErrors+lat.apiErrors > 0
	for _, m := range mems {
		failed = failed || m.errors > 0 || len(m.left) > 0
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case failed:
		return errors.New("errors or leftover QEMUs above")
	}
	return nil
}

type latencyRun struct {
	bare, api, create     []time.Duration
	bareErrors, apiErrors int
}

// latency boots the guest n times each way, alternating, so that a change
// of the machine's load falls on both.
func (b *bench) latency(ctx context.Context) latencyRun {
	var r latencyRun
	fmt.Printf("== boot latency: create to %s, %d MiB\n", marker, b.o.bootMemMB)
	bareName := "bare " + qemuBinary
	for i := 0; i < b.o.n && ctx.Err() == nil; i++ {
		d, err := bareBoot(ctx, b.o, b.o.accel, b.o.bootMemMB, b.o.bootTimeout)
		if err != nil {
			r.bareErrors++
			fmt.Printf("%-26s run %d  error: %v\n", bareName, i+1, err)
		} else {
			r.bare = append(r.bare, d)
			fmt.Printf("%-26s run %d  %-24s boot marker %9s\n", bareName, i+1, "", benchkit.Round(d))
		}

		id, create, d, err := b.apiBoot(ctx, fmt.Sprintf("boot-%d", i), b.o.bootMemMB)
		if err != nil {
			r.apiErrors++
			fmt.Printf("%-26s run %d  error: %v\n", "novacron qemu", i+1, err)
		} else {
			r.api = append(r.api, d)
			r.create = append(r.create, create)
			fmt.Printf("%-26s run %d  create+start %10s  boot marker %9s\n", "novacron qemu", i+1, benchkit.Round(create), benchkit.Round(d))
		}
		if id != "" {
			if err := b.deleteVM(ctx, id); err != nil {
				r.apiErrors++
				fmt.Printf("  delete %s: %v\n", id, err)
			}
		}
	}
	for _, s := range [][]time.Duration{r.bare, r.api, r.create} {
		slices.Sort(s)
	}
	fmt.Printf("%-26s p50 %9s  max %9s  (%d runs, %d errors)\n", bareName, benchkit.Round(benchkit.Pct(r.bare, 50)), benchkit.Round(benchkit.Pct(r.bare, 100)), len(r.bare), r.bareErrors)
	fmt.Printf("%-26s p50 %9s  max %9s  (%d runs, %d errors)  p50 %s of bare, max %s\n", "novacron qemu", benchkit.Round(benchkit.Pct(r.api, 50)),
		benchkit.Round(benchkit.Pct(r.api, 100)), len(r.api), r.apiErrors, ratio(benchkit.Pct(r.api, 50), benchkit.Pct(r.bare, 50)), ratio(benchkit.Pct(r.api, 100), benchkit.Pct(r.bare, 100)))
	return r
}

// apiBoot creates and starts a guest through the API and returns its id,
// the time the create call took and the time from the call until its
// console showed the marker.
func (b *bench) apiBoot(ctx context.Context, name string, memMB int) (id string, create, boot time.Duration, err error) {
	t0 := time.Now()
	id, err = b.createVM(ctx, name, memMB)
	create = time.Since(t0)
	if err != nil {
		return id, create, 0, err
	}
	if err := b.waitMarker(ctx, id, t0.Add(b.o.bootTimeout), b.o.poll); err != nil {
		return id, create, 0, err
	}
	return id, create, time.Since(t0), nil
}

func (b *bench) createVM(ctx context.Context, name string, memMB int) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"name": name, "driver": "qemu", "cpus": 1, "memory_mb": memMB, "start": true,
		"config": map[string]any{"accel": b.o.accel, "kernel_image_id": b.kid, "initrd_image_id": b.iid, "cmdline": "console=ttyS0"},
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

func (b *bench) deleteVM(ctx context.Context, id string) error {
	return b.c.Explain(ctx, id, b.c.Do(ctx, "DELETE", "/api/vm/vms/"+id+"?wait=1&timeout=300s", "", nil, http.StatusNoContent, nil))
}

// waitMarker polls the VM's console until it shows the marker.
func (b *bench) waitMarker(ctx context.Context, id string, deadline time.Time, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var logs []byte
		if err := b.c.Do(ctx, "GET", "/api/vm/vms/"+id+"/logs", "", nil, http.StatusOK, &logs); err != nil {
			return err
		}
		if bytes.Contains(logs, []byte(marker)) {
			return nil
		}
		if err := consoleFailure(logs); err != nil {
			return fmt.Errorf("vm %s: %w", id, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vm %s: no boot marker in time; console ends %q", id, benchkit.LastLine(logs))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// memRun is the memory of n idle guests and of this process around them.
type memRun struct {
	n                        int
	qemuRSS, qemuPSS         int64 // bytes, all the guests' QEMUs
	selfRSS0, selfRSS1       int64 // this process before and with the guests
	heap0, heap1             uint64
	goroutines0, goroutines1 int
	errors                   int
	left                     []string // QEMUs and directories left after the delete
}

func (m memRun) selfRSSGrowth() int64 { return m.selfRSS1 - m.selfRSS0 }
func (m memRun) heapGrowth() int64    { return int64(m.heap1) - int64(m.heap0) }

func (m memRun) ratio() float64 {
	if m.qemuPSS <= 0 {
		return 0
	}
	return float64(m.qemuPSS+m.selfRSSGrowth()) / float64(m.qemuPSS)
}

// memory starts n guests, conc booting at once (each worker creates a
// guest and waits for its marker before the next), lets them idle, reads
// the memory of their QEMUs and of this process, and deletes them.
func (b *bench) memory(ctx context.Context, n int) memRun {
	m := memRun{n: n}
	fmt.Printf("\n== %d idle guests of %d MiB\n", n, b.o.memoryMB)
	m.selfRSS0, m.heap0, m.goroutines0 = benchkit.SelfMemory(b.c.HC)

	ids := make([]string, n)
	t0 := time.Now()
	m.errors += each(ctx, "boot", n, b.o.conc, func(i int) error {
		id, err := b.createVM(ctx, fmt.Sprintf("idle-%d-%03d", n, i), b.o.memoryMB)
		ids[i] = id
		if err != nil {
			return err
		}
		// Idle guests are polled gently: they are not being timed.
		return b.waitMarker(ctx, id, time.Now().Add(b.o.bootTimeout), 250*time.Millisecond)
	})
	booted := time.Since(t0)
	fmt.Printf("%-26s %d guests booted in %s, %d errors; settling %s\n", "novacron qemu", n, benchkit.Round(booted), m.errors, b.o.settle)
	select {
	case <-ctx.Done():
	case <-time.After(b.o.settle):
	}

	pids := map[int]string{}
	for _, id := range ids {
		if id == "" {
			continue
		}
		pid, err := b.qemuPID(id)
		if err != nil {
			m.errors++
			fmt.Printf("  %v\n", err)
			continue
		}
		pids[pid] = id
	}
	if scan := qemusUnder(b.dataDir); len(scan) != len(pids) {
		m.errors++
		fmt.Printf("  %d QEMUs under %s in /proc, %d from the guests' pid files\n", len(scan), b.dataDir, len(pids))
	}
	for pid := range pids {
		rss, pss, err := smapsRollup(pid)
		if err != nil {
			m.errors++
			fmt.Printf("  qemu %d: %v\n", pid, err)
			continue
		}
		m.qemuRSS += rss
		m.qemuPSS += pss
	}
	m.selfRSS1, m.heap1, m.goroutines1 = benchkit.SelfMemory(b.c.HC)
	if len(pids) > 0 {
		k := int64(len(pids))
		fmt.Printf("%-26s QEMU RSS %s, PSS %s per guest (%d QEMUs)\n", "novacron qemu", mib(m.qemuRSS/k), mib(m.qemuPSS/k), len(pids))
	}
	fmt.Printf("%-26s RSS %s -> %s, Go heap %s -> %s, goroutines %d -> %d: %s RSS per guest\n", "this process (server)",
		mib(m.selfRSS0), mib(m.selfRSS1), mib(int64(m.heap0)), mib(int64(m.heap1)), m.goroutines0, m.goroutines1,
		kib(m.selfRSSGrowth()/int64(n)))

	t1 := time.Now()
	m.errors += each(ctx, "delete", n, b.o.conc, func(i int) error {
		if ids[i] == "" {
			return nil
		}
		return b.deleteVM(ctx, ids[i])
	})
	fmt.Printf("%-26s %d guests deleted in %s\n", "novacron qemu", n, benchkit.Round(time.Since(t1)))

	// The API said every guest is gone: none of their QEMUs or
	// directories may be left.
	for pid, id := range pids {
		if b.qemuAlive(pid) {
			m.left = append(m.left, fmt.Sprintf("qemu %d of vm %s", pid, id))
		}
	}
	for _, pid := range qemusUnder(b.dataDir) {
		if _, ok := pids[pid]; !ok {
			m.left = append(m.left, fmt.Sprintf("qemu %d (no pid file seen)", pid))
		}
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(b.qemuDir, id)); err == nil {
			m.left = append(m.left, "directory "+filepath.Join(b.qemuDir, id))
		}
	}
	fmt.Printf("left after the delete: %d\n", len(m.left))
	for _, s := range m.left {
		fmt.Printf("  LEFT %s\n", s)
	}
	return m
}

// qemuPID reads the pid file the driver has QEMU write in the guest's
// directory, and checks that the process is that guest's QEMU.
func (b *bench) qemuPID(id string) (int, error) {
	raw, err := os.ReadFile(filepath.Join(b.qemuDir, id, "qemu.pid"))
	if err != nil {
		return 0, fmt.Errorf("vm %s: %w", id, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || !b.qemuAlive(pid) {
		return 0, fmt.Errorf("vm %s: pid file %q names no QEMU of this run", id, strings.TrimSpace(string(raw)))
	}
	return pid, nil
}

func (b *bench) qemuAlive(pid int) bool { return slices.Contains(qemusUnder(b.dataDir), pid) }

// qemusUnder returns the live QEMUs whose command line names dir.
func qemusUnder(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmdline, []byte(dir+"/")) {
			continue
		}
		arg0, _, _ := bytes.Cut(cmdline, []byte{0})
		if !strings.HasPrefix(filepath.Base(string(arg0)), "qemu-system") {
			continue
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// smapsRollup returns a process's resident and proportional set sizes in
// bytes.
func smapsRollup(pid int) (rss, pss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
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
		}
	}
	if rss < 0 || pss < 0 {
		return 0, 0, fmt.Errorf("no Rss or Pss in /proc/%d/smaps_rollup", pid)
	}
	return rss, pss, nil
}

// each runs f(0..n-1) on conc workers and returns the number of errors;
// the first few are printed.
func each(ctx context.Context, name string, n, conc int, f func(i int) error) int {
	var (
		next, errs, logged atomic.Int64
		wg                 sync.WaitGroup
	)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errs.Add(1)
					if logged.Add(1) <= 5 {
						fmt.Printf("  %s #%d: %v\n", name, i, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	return int(errs.Load())
}

// cleanup stops and deletes whatever guests the node still has, so that a
// failed or interrupted run leaves no QEMU on the host.
func cleanup(srv *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ag := srv.Agent()
	guests, err := ag.ListGuests(ctx)
	if err != nil {
		fmt.Printf("  cleanup: list guests: %v\n", err)
		return
	}
	for _, g := range guests {
		_ = ag.StopGuest(ctx, g.ID, time.Second, true)
		if err := ag.DeleteGuest(ctx, g.ID); err != nil {
			fmt.Printf("  cleanup: delete guest %s: %v\n", g.ID, err)
		}
	}
	if len(guests) > 0 {
		fmt.Printf("  cleanup: %d guests deleted through the agent\n", len(guests))
	}
}

func ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b int64) string { return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10)) }

// upload posts a file to the image store and returns the image's id.
func upload(ctx context.Context, c *benchkit.Client, path, name, format string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	q := url.Values{"name": {name}, "format": {format}}
	var img struct{ ID string }
	if err := c.Do(ctx, "POST", "/api/images?"+q.Encode(), "application/octet-stream", f, http.StatusCreated, &img); err != nil {
		return "", err
	}
	return img.ID, nil
}
