package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/atomicfile"
	"github.com/novacron/novacron/internal/driver"
)

// oldConsoleLog is where a capped console log's older output goes.
const oldConsoleLog = "console.log.1"

// stateEvents are the QMP events after which a guest's state may differ.
var stateEvents = map[string]bool{
	"STOP": true, "RESUME": true, "SHUTDOWN": true, "RESET": true,
	"GUEST_PANICKED": true, "GUEST_CRASHLOADED": true,
}

// Watch follows every running guest's QMP events on its events socket and
// calls changed when one says the guest's state changed (stopped, resumed,
// powered off, reset, panicked) or when QEMU goes (its socket closes: it
// quit or crashed). Guests started by an earlier agent are watched too. It
// also caps the guests' console logs. It returns when ctx ends.
func (d *Driver) Watch(ctx context.Context, changed func(id string)) {
	var (
		mu sync.Mutex
		// watching maps a guest to the pid of the QEMU watched.
		watching = map[string]int{}
		wg       sync.WaitGroup
	)
	// handled maps a guest to the last QEMU (pid) Watch dealt with: a
	// QEMU that ended before it could be watched is reported once.
	handled := map[string]int{}
	defer wg.Wait()
	t := time.NewTicker(d.cfg.WatchInterval)
	defer t.Stop()
	for {
		ids, err := d.List(ctx)
		if err != nil {
			d.log.Warn("watch: list guests", "err", err)
		}
		if err == nil {
			for id := range handled {
				if !slices.Contains(ids, id) {
					delete(handled, id)
				}
			}
		}
		for _, id := range ids {
			dir := filepath.Join(d.cfg.Dir, id)
			d.capLog(dir)
			run, alive, err := d.running(dir)
			if err != nil || run.PID == 0 {
				continue
			}
			mu.Lock()
			w := watching[id]
			mu.Unlock()
			if w == run.PID {
				continue
			}
			if !alive {
				if handled[id] != run.PID {
					handled[id] = run.PID
					changed(id)
				}
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			q, err := dialQMP(dctx, filepath.Join(dir, eventsSock))
			cancel()
			if err != nil {
				// Starting, ending, or started without an events socket:
				// the next round tries again; reconciliation covers the rest.
				continue
			}
			handled[id] = run.PID
			mu.Lock()
			watching[id] = run.PID
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					if watching[id] == run.PID {
						delete(watching, id)
					}
					mu.Unlock()
				}()
				d.watchEvents(ctx, id, q, changed)
			})
			// What happened before the socket was held is not lost.
			changed(id)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

// watchEvents reads one guest's QMP events until its QEMU goes or ctx ends.
func (d *Driver) watchEvents(ctx context.Context, id string, q *qmpConn, changed func(id string)) {
	stop := context.AfterFunc(ctx, func() { q.Close() })
	defer stop()
	defer q.Close()
	_ = q.conn.SetDeadline(time.Time{})
	for {
		m, err := q.read()
		if err != nil {
			if ctx.Err() == nil {
				d.log.Debug("qmp events ended: qemu is gone", "guest", id, "err", err)
				changed(id)
			}
			return
		}
		if stateEvents[m.Event] {
			d.log.Debug("qmp event", "guest", id, "event", m.Event)
			changed(id)
		}
	}
}

// capLog moves a console log grown past ConsoleLogMax to console.log.1 and
// empties it: copy, then truncate, as QEMU keeps it open (O_APPEND, so it
// writes on at the new end). Output written between the two is lost.
func (d *Driver) capLog(dir string) {
	path := filepath.Join(dir, consoleLog)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= d.cfg.ConsoleLogMax {
		return
	}
	b, err := readTail(path, d.cfg.ConsoleLogMax)
	if err == nil {
		err = atomicfile.Write(filepath.Join(dir, oldConsoleLog), b, 0o600)
	}
	if err == nil {
		err = os.Truncate(path, 0)
	}
	if err != nil {
		d.log.Warn("cap console log", "guest", filepath.Base(dir), "err", err)
	}
}

// Restart resets a running or paused guest (QMP system_reset, then cont
// when it was paused) and confirms it runs.
func (d *Driver) Restart(ctx context.Context, id string) error {
	dir, st, err := d.guestStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.State != driver.GuestRunning && st.State != driver.GuestPaused {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is %s, not running", id, st.State)
	}
	q, err := d.dial(ctx, dir)
	if err != nil {
		return fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	defer q.Close()
	if err := q.Execute(ctx, "system_reset", nil, nil); err != nil {
		return fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	if st.State == driver.GuestPaused {
		if err := q.Execute(ctx, "cont", nil, nil); err != nil {
			return fmt.Errorf("qemu: guest %s: %w", id, err)
		}
	}
	qs, err := q.QueryStatus(ctx)
	if err != nil {
		return fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	if !qs.Running {
		return novacron.Errorf(novacron.EOperationFailed, "guest %s: qemu reports %q after a reset", id, qs.Status)
	}
	d.log.Info("guest reset", "guest", id)
	return nil
}

// Console connects to a running guest's serial console. QEMU serves one
// client at a time, so a second connection is refused (EConflict) rather
// than left waiting.
func (d *Driver) Console(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	dir, st, err := d.guestStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.State != driver.GuestRunning && st.State != driver.GuestPaused {
		return nil, novacron.Errorf(novacron.EInvalidState, "guest %s is %s, not running", id, st.State)
	}
	d.mu.Lock()
	busy := d.consoles[id]
	if !busy {
		d.consoles[id] = true
	}
	d.mu.Unlock()
	if busy {
		return nil, novacron.Errorf(novacron.EConflict, "the console of guest %s is already in use", id)
	}
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "unix", filepath.Join(dir, consoleSock))
	if err != nil {
		d.releaseConsole(id)
		return nil, &novacron.Error{Code: novacron.EOperationFailed, Message: "the guest's console does not answer", Err: err}
	}
	return &console{Conn: conn, release: func() { d.releaseConsole(id) }}, nil
}

func (d *Driver) releaseConsole(id string) {
	d.mu.Lock()
	delete(d.consoles, id)
	d.mu.Unlock()
}

// console is a connection to a guest's console that frees it on Close.
type console struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *console) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times: 100
// on every Linux architecture NovaCron runs on.
const clockTicks = 100

// Stats samples a running guest: QEMU's CPU time and resident memory from
// /proc, and its disks' I/O from query-blockstats. User-mode networking
// keeps no counters QEMU reports, so the network counters are nil.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	dir, err := d.guestDir(id)
	if err != nil {
		return driver.Stats{}, err
	}
	run, alive, err := d.running(dir)
	if err != nil {
		return driver.Stats{}, err
	}
	if !alive {
		return driver.Stats{}, novacron.Errorf(novacron.EInvalidState, "guest %s is not running", id)
	}
	st := driver.Stats{SampledAt: time.Now().UTC()}
	if st.CPUSeconds, st.MemoryBytes, err = procUsage(run.PID); err != nil {
		return driver.Stats{}, fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	q, err := d.dial(ctx, dir)
	if err != nil {
		return driver.Stats{}, fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	defer q.Close()
	var blocks []struct {
		Stats struct {
			RdBytes int64 `json:"rd_bytes"`
			WrBytes int64 `json:"wr_bytes"`
			RdOps   int64 `json:"rd_operations"`
			WrOps   int64 `json:"wr_operations"`
		} `json:"stats"`
	}
	if err := q.Execute(ctx, "query-blockstats", nil, &blocks); err != nil {
		return driver.Stats{}, fmt.Errorf("qemu: guest %s: %w", id, err)
	}
	var rb, wb, ro, wo int64
	for _, b := range blocks {
		rb += b.Stats.RdBytes
		wb += b.Stats.WrBytes
		ro += b.Stats.RdOps
		wo += b.Stats.WrOps
	}
	st.DiskReadBytes, st.DiskWriteBytes, st.DiskReadOps, st.DiskWriteOps = &rb, &wb, &ro, &wo
	return st, nil
}

// procUsage reads a process's CPU time (user and system) and resident
// memory from /proc.
func procUsage(pid int) (cpuSeconds float64, rssBytes int64, err error) {
	proc := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command (in parentheses, which may hold spaces):
	// state is the first, utime the 12th and stime the 13th.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("bad " + proc + "/stat")
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, 0, errors.New("short " + proc + "/stat")
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("bad times in " + proc + "/stat")
	}
	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				return 0, 0, errors.New("bad VmRSS in " + proc + "/status")
			}
			rssBytes = kb << 10
		}
	}
	return float64(utime+stime) / clockTicks, rssBytes, nil
}
