// Command vmbench measures the lifecycle of process VMs through the API:
// create+start, stop and delete of n VMs by a bounded pool of workers, each
// call waiting for its operation (?wait=1), on SQLite and PostgreSQL. It
// reports VMs per second of each phase and of the whole cycle, the p50 and
// p99 latency of each call, beside the bare cost of starting, killing and
// reaping as many /bin/sleep processes with os/exec in the same run, and it
// checks that nothing is left behind: no guest process, no cgroup, no file.
// It needs root (guests run in their own cgroups, as their own uids).
//
//	go run ./bench/vmbench -n 500 -concurrency 16 [-pg postgres://...] [-novacron PATH]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/novacron/novacron/bench/internal/benchkit"
	"github.com/novacron/novacron/internal/server"
)

// The guest uids the agent hands out by default.
const (
	guestUIDMin = 200000
	guestUIDMax = 265535
)

func main() {
	n := flag.Int("n", 500, "VMs per store")
	conc := flag.Int("concurrency", 16, "concurrent API calls (and bare processes)")
	pg := flag.String("pg", os.Getenv("NOVACRON_TEST_PG_URL"), "PostgreSQL server URL; a fresh database is created on it (empty: SQLite only)")
	bin := flag.String("novacron", "", "novacron binary, the guests' shim (default: built into a temporary directory)")
	logFile := flag.String("log", "", "write the servers' log (JSON, info and up) to this file (default: discarded)")
	flag.Parse()
	log.SetFlags(0)
	if os.Geteuid() != 0 {
		log.Fatal("vmbench needs root: process guests run in their own cgroups, as their own uids")
	}
	if *n <= 0 || *conc <= 0 {
		log.Fatal("-n and -concurrency must be positive")
	}
	shim := *bin
	if shim == "" {
		tmp, err := os.MkdirTemp("", "vmbench-bin-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		shim = filepath.Join(tmp, "novacron")
		cmd := exec.Command("go", "build", "-o", shim, "github.com/novacron/novacron/cmd/novacron")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatalf("build novacron: %v", err)
		}
	} else if abs, err := filepath.Abs(shim); err == nil {
		shim = abs
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

	fmt.Printf("vmbench: %d VMs per store, %d concurrent calls, shim %s\n\n", *n, *conc, shim)
	failed := false

	bare := runBare(*n, *conc)
	bare.print()
	if bare.errors > 0 {
		failed = true
	}

	runs := []*storeRun{}
	stores := []struct{ name, db string }{{"sqlite", ""}}
	if *pg != "" {
		stores = append(stores, struct{ name, db string }{"postgres", *pg})
	}
	for _, st := range stores {
		r := runStore(st.name, st.db, shim, *n, *conc, logger.With("store", st.name))
		runs = append(runs, r)
		if r.failed() {
			failed = true
		}
	}

	fmt.Printf("\n| target | phase | n | wall | per second | p50 | p99 | errors |\n")
	fmt.Printf("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range bare.phases {
		p.row("bare os/exec /bin/sleep")
	}
	bare.total.row("bare os/exec /bin/sleep")
	for _, r := range runs {
		for _, p := range r.phases {
			p.row("novacron " + r.name)
		}
		r.total.row("novacron " + r.name)
	}
	fmt.Printf("\n| target | cycle per VM | ratio to bare process | leaked processes | leaked cgroups | leaked files |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|\n")
	fmt.Printf("| bare os/exec /bin/sleep | %s | 1 | – | – | – |\n", round(bare.total.perItem()))
	for _, r := range runs {
		fmt.Printf("| novacron %s | %s | %.1f | %d | %d | %d |\n", r.name, round(r.total.perItem()),
			float64(r.total.perItem())/float64(bare.total.perItem()), len(r.leaks.procs), len(r.leaks.cgroups), len(r.leaks.files))
	}
	if failed {
		fmt.Println("\nFAILED: errors or leaks above")
		os.Exit(1)
	}
}

// phase is the timing of one phase: its wall time and each call's latency.
type phase struct {
	name   string
	n      int
	wall   time.Duration
	lats   []time.Duration
	errors int
}

func (p phase) perItem() time.Duration {
	if p.n == 0 {
		return 0
	}
	return p.wall / time.Duration(p.n)
}

func (p phase) rate() float64 { return float64(p.n) / p.wall.Seconds() }

func (p phase) pct(q int) time.Duration {
	if len(p.lats) == 0 {
		return 0
	}
	return p.lats[min(len(p.lats)-1, len(p.lats)*q/100)]
}

// quantiles are the p50 and p99 latency of the phase's calls ("–" for a
// whole cycle, which is no call).
func (p phase) quantiles() (string, string) {
	if len(p.lats) == 0 {
		return "–", "–"
	}
	return round(p.pct(50)).String(), round(p.pct(99)).String()
}

// line prints the phase as it ends; row prints it in the final table.
func (p phase) line(target string) {
	p50, p99 := p.quantiles()
	fmt.Printf("%-26s %-12s %9s %8.1f/s  p50 %-9s p99 %-9s errors %d\n", target, p.name, round(p.wall), p.rate(), p50, p99, p.errors)
}

func (p phase) row(target string) {
	p50, p99 := p.quantiles()
	fmt.Printf("| %s | %s | %d | %s | %.1f | %s | %s | %d |\n", target, p.name, p.n, round(p.wall), p.rate(), p50, p99, p.errors)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// pool runs f(0..n-1) on conc workers and times the whole and each call.
// A call's error is printed (the first few) and counted.
func pool(name string, n, conc int, f func(i int) error) phase {
	lats := make([]time.Duration, n)
	ok := make([]bool, n)
	var (
		next   atomic.Int64
		errs   atomic.Int64
		wg     sync.WaitGroup
		logged atomic.Int64
	)
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
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
	slices.Sort(p.lats)
	return p
}

func total(ps []phase) phase {
	t := phase{name: "whole cycle"}
	for _, p := range ps {
		t.n = p.n
		t.wall += p.wall
		t.errors += p.errors
	}
	return t
}

type bareRun struct {
	phases []phase
	total  phase
	errors int
}

func (b bareRun) print() {
	for _, p := range append(b.phases, b.total) {
		p.line("bare os/exec /bin/sleep")
	}
}

// runBare is the baseline: n /bin/sleep processes started (all alive
// together, as the VMs are), then killed and reaped, conc at a time.
func runBare(n, conc int) bareRun {
	cmds := make([]*exec.Cmd, n)
	start := pool("start", n, conc, func(i int) error {
		cmds[i] = exec.Command("/bin/sleep", "3600")
		return cmds[i].Start()
	})
	stop := pool("kill+wait", n, conc, func(i int) error {
		c := cmds[i]
		if c == nil || c.Process == nil {
			return errors.New("not started")
		}
		if err := c.Process.Kill(); err != nil {
			return err
		}
		_ = c.Wait() // "signal: killed" is the expected outcome
		return nil
	})
	ps := []phase{start, stop}
	t := total(ps)
	return bareRun{phases: ps, total: t, errors: t.errors}
}

type storeRun struct {
	name   string
	phases []phase
	total  phase
	leaks  leaks
	err    error
}

func (r *storeRun) failed() bool { return r.err != nil || r.total.errors > 0 || !r.leaks.none() }

// runStore starts a control plane on db (empty: SQLite in its data dir; a
// PostgreSQL server URL: a fresh database on it) and runs the three phases.
func runStore(name, db, shim string, n, conc int, logger *slog.Logger) *storeRun {
	r := &storeRun{name: name}
	fmt.Printf("\n== %s\n", name)
	dir, err := os.MkdirTemp("", "ncb")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if db != "" {
		u, drop, err := freshDatabase(db)
		if err != nil {
			log.Fatalf("postgres: %v", err)
		}
		defer drop()
		db = u
	}
	pw := "bench-admin-password"
	srv, err := server.Open(context.Background(), server.Config{
		DataDir: dir, DB: db, Listen: "127.0.0.1:0", AdminPassword: pw,
		ShimCommand: []string{shim, "shim"},
		Logger:      logger,
	})
	if err != nil {
		log.Fatalf("%s: open server: %v", name, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = srv.Close(ctx)
		cancel()
	}()
	c := &benchkit.Client{Base: srv.URL(), HC: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, IdleConnTimeout: time.Minute}}}
	ctx := context.Background()
	do := func(method, path, body string, want int, out any) error {
		ct := ""
		if body != "" {
			ct = "application/json"
		}
		return c.Do(ctx, method, path, ct, strings.NewReader(body), want, out)
	}
	if err := c.Login(ctx, pw); err != nil {
		log.Fatalf("%s: login: %v", name, err)
	}

	before := guestPIDs()
	ids := make([]string, n)
	create := pool("create+start", n, conc, func(i int) error {
		body := fmt.Sprintf(`{"name":"bench-%05d","driver":"process","cpus":1,"memory_mb":32,`+
			`"config":{"command":["/bin/sleep","3600"]},"start":true}`, i)
		var v struct{ ID, State string }
		if err := do("POST", "/api/vm/vms?wait=1", body, http.StatusOK, &v); err != nil {
			return err
		}
		ids[i] = v.ID
		if v.State != "running" {
			return c.Explain(ctx, v.ID, fmt.Errorf("vm %s is %s, not running", v.ID, v.State))
		}
		return nil
	})
	r.printPhase(create)
	stop := pool("stop", n, conc, func(i int) error {
		if ids[i] == "" {
			return errors.New("not created")
		}
		var v struct{ State string }
		if err := do("POST", "/api/vm/vms/"+ids[i]+"/stop?wait=1", "", http.StatusOK, &v); err != nil {
			return c.Explain(ctx, ids[i], err)
		}
		if v.State != "stopped" {
			return fmt.Errorf("vm %s is %s, not stopped", ids[i], v.State)
		}
		return nil
	})
	r.printPhase(stop)
	del := pool("delete", n, conc, func(i int) error {
		if ids[i] == "" {
			return errors.New("not created")
		}
		return c.Explain(ctx, ids[i], do("DELETE", "/api/vm/vms/"+ids[i]+"?wait=1", "", http.StatusNoContent, nil))
	})
	r.printPhase(del)
	r.phases = []phase{create, stop, del}
	r.total = total(r.phases)
	r.printPhase(r.total)

	// The API said every VM is gone: nothing of them may remain.
	r.leaks = findLeaks(dir, ids, before)
	r.leaks.print(name + ", after the last delete")
	if !r.leaks.none() {
		cleanup(srv, dir)
	}
	// Nor may anything appear while the server shuts down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	r.err = srv.Close(ctx)
	cancel()
	if r.err != nil {
		fmt.Printf("  close: %v\n", r.err)
	}
	if after := findLeaks(dir, ids, before); !after.none() && r.leaks.none() {
		r.leaks = after
		after.print(name + ", after the server closed")
	}
	return r
}

func (r *storeRun) printPhase(p phase) {
	p.line("novacron " + r.name)
}

// cleanup stops and deletes whatever guests the node still has, so that a
// failed run leaves nothing on the host.
func cleanup(srv *server.Server, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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
	fmt.Printf("  cleanup: %d guests deleted through the agent (data dir %s is removed next)\n", len(guests), dir)
}

// freshDatabase creates an empty database on the server of base and
// returns its URL and a function that drops it.
func freshDatabase(base string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "ncbench_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			fmt.Printf("drop database %s: %v\n", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Printf("drop database %s: %v\n", name, err)
		}
	}
	return u.String(), drop, nil
}

// leaks is what remains of the benchmark's VMs. Others' guests (a test
// running beside, or an earlier crash) are listed apart and not counted.
type leaks struct {
	procs, cgroups, files []string
	foreign               []string
}

func (l leaks) none() bool { return len(l.procs)+len(l.cgroups)+len(l.files) == 0 }

func (l leaks) print(when string) {
	fmt.Printf("leaks (%s): %d processes, %d cgroups, %d files\n", when, len(l.procs), len(l.cgroups), len(l.files))
	for _, s := range slices.Concat(l.procs, l.cgroups, l.files) {
		fmt.Printf("  LEAK %s\n", s)
	}
	for i, s := range l.foreign {
		if i == 3 {
			fmt.Printf("  … and %d more not ours\n", len(l.foreign)-i)
			break
		}
		fmt.Printf("  not ours, not counted: %s\n", s)
	}
}

// findLeaks looks for what could remain of the VMs ids run from data dir
// dir: processes running from dir or in the VMs' cgroups (guests and shims),
// any other process with a guest uid that was not there before (pids
// before) and is in no other agent's cgroup, guest cgroups of any
// controller, and files of the process driver and the agent.
func findLeaks(dir string, ids []string, before map[int]bool) leaks {
	var l leaks
	ours := map[string]bool{}
	for _, id := range ids {
		if id != "" {
			ours[id] = true
		}
	}
	mine := func(s string) bool {
		if strings.Contains(s, dir) {
			return true
		}
		for id := range ours {
			if strings.Contains(s, id) {
				return true
			}
		}
		return false
	}

	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		uid, state := procStatus(pid)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cmd := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		desc := fmt.Sprintf("process %d uid %d state %s: %s", pid, uid, state, cmd)
		switch {
		case mine(cmd) || mine(string(cg)):
			l.procs = append(l.procs, desc)
		case uid < guestUIDMin || uid > guestUIDMax:
		case before[pid] || strings.Contains(string(cg), "novacron"):
			// Running before the store's run, or in another agent's cgroup.
			l.foreign = append(l.foreign, desc)
		default:
			l.procs = append(l.procs, desc)
		}
	}

	roots, _ := filepath.Glob("/sys/fs/cgroup/*/novacron")
	if fi, err := os.Stat("/sys/fs/cgroup/novacron"); err == nil && fi.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/novacron") // cgroup v2
	}
	for _, root := range roots {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			p := filepath.Join(root, e.Name())
			if ours[e.Name()] {
				l.cgroups = append(l.cgroups, "cgroup "+p)
			} else {
				l.foreign = append(l.foreign, "cgroup "+p)
			}
		}
	}

	for _, sub := range []string{"agent/process", "agent/guests"} {
		d := filepath.Join(dir, sub)
		ents, err := os.ReadDir(d)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			l.files = append(l.files, fmt.Sprintf("%s: %v", d, err))
		}
		for _, e := range ents {
			l.files = append(l.files, "file "+filepath.Join(d, e.Name()))
		}
	}
	return l
}

// guestPIDs are the processes with a guest uid.
func guestPIDs() map[int]bool {
	m := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if uid, _ := procStatus(pid); uid >= guestUIDMin && uid <= guestUIDMax {
				m[pid] = true
			}
		}
	}
	return m
}

// procStatus reads the real uid and the state of a process.
func procStatus(pid int) (uid int, state string) {
	uid = -1
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return uid, ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				uid, _ = strconv.Atoi(f[0])
			}
		}
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			state = strings.TrimSpace(v)
		}
	}
	return uid, state
}
