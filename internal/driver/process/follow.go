package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/novacron/novacron/internal/driver"
)

var _ driver.LogFollower = (*Driver)(nil)

// How FollowLogs watches a guest's log: it reads its open log file every
// followPoll (a read at the end of a file is one cheap system call), and
// looks at whether the guest still runs every followAlive.
const (
	followPoll  = 200 * time.Millisecond
	followAlive = time.Second
	followChunk = 32 << 10
)

// FollowLogs writes the last tail lines of the guest's output (all of the
// current log file when tail <= 0), then its output as it is written, until
// the guest's run ends (its shim, which writes the last of it before it
// exits, is gone), ctx ends or a write to w fails. It follows the log across
// its rotations. Memory per follower is one read buffer, whatever the
// guest writes: a slow w slows the reading, never the guest.
func (d *Driver) FollowLogs(ctx context.Context, id string, tail int, w io.Writer) error {
	dir, err := d.guestDir(id)
	if err != nil {
		return err
	}
	fl := &follower{path: logPath(dir), files: d.cfg.LogFiles, pidFile: filepath.Join(dir, pidFile), w: w,
		buf: make([]byte, followChunk)}
	defer fl.close()
	// The current file is opened first and read from its start, so that
	// nothing written between the tail and the follow is lost or doubled.
	if err := fl.open(); err != nil {
		return err
	}
	var head []byte
	if fl.f != nil {
		if head, err = io.ReadAll(fl.f); err != nil {
			return fmt.Errorf("process: %w", err)
		}
	}
	if tail > 0 {
		// Reach back into rotated files, as Logs does.
		for n := 1; n <= d.cfg.LogFiles && countLines(head) < tail; n++ {
			older, err := os.ReadFile(rotatedName(fl.path, n))
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err != nil {
				return fmt.Errorf("process: %w", err)
			}
			head = append(older, head...)
		}
		head = lastLines(head, tail)
	}
	if len(head) > 0 {
		if _, err := w.Write(head); err != nil {
			return err
		}
	}
	poll := time.NewTicker(followPoll)
	defer poll.Stop()
	lastCheck := time.Time{}
	for {
		if err := fl.drain(); err != nil {
			return err
		}
		if time.Since(lastCheck) >= followAlive {
			lastCheck = time.Now()
			alive, err := shimAlive(fl.pidFile)
			if err != nil {
				return fmt.Errorf("process: %w", err)
			}
			if !alive {
				// The shim wrote the last of the output before it
				// exited.
				return fl.drain()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
	}
}

// follower reads a rotated log as it grows.
type follower struct {
	path, pidFile string
	files         int // rotated files kept
	f             *os.File
	w             io.Writer
	buf           []byte
}

// open opens the log file at path, if there is one.
func (fl *follower) open() error {
	f, err := os.Open(fl.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	fl.f = f
	return nil
}

func (fl *follower) close() {
	if fl.f != nil {
		fl.f.Close()
	}
}

// drain copies what was appended to the log since the last read, and, once
// the file it reads was rotated, the rest of it and of the files written
// after it, up to the current one.
func (fl *follower) drain() error {
	for {
		if fl.f == nil {
			if err := fl.open(); err != nil || fl.f == nil {
				return err
			}
		}
		if err := fl.copy(); err != nil {
			return err
		}
		cur, err := os.Stat(fl.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil // between a rotation's rename and the new file
		}
		if err != nil {
			return fmt.Errorf("process: %w", err)
		}
		old, err := fl.f.Stat()
		if err != nil {
			return fmt.Errorf("process: %w", err)
		}
		if os.SameFile(cur, old) {
			return nil
		}
		// Rotated: the old file is complete (the shim starts the new
		// one only after the rename); read what is left of it, then go
		// on with the file written after it.
		if err := fl.copy(); err != nil {
			return err
		}
		fl.f.Close()
		fl.f = nil
		if err := fl.openNext(old); err != nil {
			return err
		}
	}
}

// openNext opens the file of the log written after old, a file that was
// rotated: the rotated file one newer than old's place now, or, when old
// was dropped, the oldest one left (nil: the current one, opened by drain).
func (fl *follower) openNext(old os.FileInfo) error {
	next := -1
	for n := fl.files; n >= 1; n-- {
		fi, err := os.Stat(rotatedName(fl.path, n))
		if err != nil {
			continue
		}
		if os.SameFile(fi, old) {
			next = n - 1
			break
		}
		if next < 0 {
			next = n // the oldest left, unless old is found
		}
	}
	if next <= 0 {
		return nil
	}
	f, err := os.Open(rotatedName(fl.path, next))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	fl.f = f
	return nil
}

// copy writes what can be read from the open file now to w.
func (fl *follower) copy() error {
	for {
		n, err := fl.f.Read(fl.buf)
		if n > 0 {
			if _, werr := fl.w.Write(fl.buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("process: %w", err)
		}
	}
}
