package qemu

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// readPid reads a pid file.
func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0, errors.New("bad pid file " + path)
	}
	return pid, nil
}

// qemuAlive reports whether pid is a live (not zombie) QEMU of the guest
// in dir: its command line names the guest's QMP socket, so a reused pid
// is never taken for it.
func (d *Driver) qemuAlive(dir string, pid int) bool {
	if pid <= 0 {
		return false
	}
	proc := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return false
	}
	if st, ok := parseStatState(stat); !ok || st == 'Z' || st == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return false
	}
	want := []byte("path=" + escapeOpt(filepath.Join(dir, qmpSock)) + ",")
	return bytes.Contains(cmdline, want)
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

// readTail reads at most the last max bytes of path, from a line start
// when it cuts; a missing file is empty.
func readTail(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, nil
}

// tailLines returns the last n lines of b (all of b when n <= 0); an
// unterminated last line counts as a line.
func tailLines(b []byte, n int) []byte {
	if n <= 0 || len(b) == 0 {
		return b
	}
	end := len(b)
	if b[end-1] == '\n' {
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
