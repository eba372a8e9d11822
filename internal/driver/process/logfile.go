package process

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// rotatingLog is a size-capped log file: once name reaches max bytes it
// becomes name.1 (name.1 becomes name.2 …, name.<files> is dropped) and a
// new name is started. A write is split at the last newline that fits, so
// lines that fit in a file are never cut in two. It is not safe for
// concurrent use.
type rotatingLog struct {
	path  string
	max   int64
	files int
	f     *os.File
	size  int64
}

// openLog opens (appending) or creates the log at path.
func openLog(path string, max int64, files int) (*rotatingLog, error) {
	if max <= 0 {
		return nil, fmt.Errorf("log: size cap must be positive")
	}
	l := &rotatingLog{path: path, max: max, files: files}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *rotatingLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

// rotatedName is the name of the n-th rotated file (0: the current one).
func rotatedName(path string, n int) string {
	if n == 0 {
		return path
	}
	return fmt.Sprintf("%s.%d", path, n)
}

func (l *rotatingLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	if l.files <= 0 {
		if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	} else {
		for n := l.files - 1; n >= 0; n-- {
			err := os.Rename(rotatedName(l.path, n), rotatedName(l.path, n+1))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return l.open()
}

func (l *rotatingLog) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		room := l.max - l.size
		if room <= 0 {
			if err := l.rotate(); err != nil {
				return written, err
			}
			continue
		}
		cut := len(p)
		if int64(cut) > room {
			cut = int(room)
			if i := bytes.LastIndexByte(p[:cut], '\n'); i >= 0 {
				cut = i + 1
			} else if l.size > 0 {
				// Start the line in a fresh file rather than cut it.
				if err := l.rotate(); err != nil {
					return written, err
				}
				continue
			}
		}
		n, err := l.f.Write(p[:cut])
		l.size += int64(n)
		written += n
		if err != nil {
			return written, err
		}
		p = p[cut:]
	}
	return written, nil
}

func (l *rotatingLog) Close() error { return l.f.Close() }

// readLogTail returns the last tail lines of the log at path, reading back
// into rotated files (up to files of them) when the current one holds fewer;
// all of the current file when tail <= 0. A missing log is empty.
func readLogTail(path string, files, tail int) ([]byte, error) {
	if tail <= 0 {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	var chunks [][]byte // newest first
	lines := 0
	for n := 0; n <= files && lines < tail; n++ {
		b, err := os.ReadFile(rotatedName(path, n))
		if errors.Is(err, os.ErrNotExist) {
			if n == 0 {
				continue
			}
			break
		}
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, b)
		lines += countLines(b)
	}
	var all []byte
	for i := len(chunks) - 1; i >= 0; i-- {
		all = append(all, chunks[i]...)
	}
	return lastLines(all, tail), nil
}

// countLines counts lines, a final line without newline included.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}

// copyToLog copies r into l until EOF.
func copyToLog(l *rotatingLog, r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := l.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// logPath is the current output log of the guest directory dir.
func logPath(dir string) string { return filepath.Join(dir, "logs", "output.log") }
