package process

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotatingLog(t *testing.T) {
	for _, tc := range []struct {
		name       string
		max        int64
		files      int
		lines      int
		chunk      int // bytes per Write; 0: one line per Write
		wantFiles  int
		longLine   bool
		appendMore bool
	}{
		{name: "fits", max: 1 << 20, files: 3, lines: 10, wantFiles: 1},
		{name: "rotates and keeps 3", max: 200, files: 3, lines: 500, wantFiles: 4},
		{name: "keeps none", max: 200, files: 0, lines: 500, wantFiles: 1},
		{name: "big writes", max: 300, files: 2, lines: 500, chunk: 1000, wantFiles: 3},
		{name: "line longer than the cap", max: 16, files: 2, lines: 3, longLine: true, wantFiles: 3},
		{name: "reopen appends", max: 200, files: 2, lines: 100, appendMore: true, wantFiles: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "output.log")
			l, err := openLog(path, tc.max, tc.files)
			if err != nil {
				t.Fatal(err)
			}
			var all bytes.Buffer
			for i := range tc.lines {
				line := fmt.Sprintf("line %04d\n", i)
				if tc.longLine {
					line = strings.Repeat(string(rune('a'+i)), 40) + "\n"
				}
				all.WriteString(line)
			}
			data := all.Bytes()
			write := func(l *rotatingLog, data []byte) {
				for len(data) > 0 {
					n := tc.chunk
					if n == 0 {
						n = bytes.IndexByte(data, '\n') + 1
					}
					n = min(n, len(data))
					if w, err := l.Write(data[:n]); err != nil || w != n {
						t.Fatalf("Write = %d, %v", w, err)
					}
					data = data[n:]
				}
			}
			if tc.appendMore {
				write(l, data[:len(data)/2])
				l.Close()
				if l, err = openLog(path, tc.max, tc.files); err != nil {
					t.Fatal(err)
				}
				write(l, data[len(data)/2:])
			} else {
				write(l, data)
			}
			l.Close()

			// Every file honours the cap, at most files rotated ones are
			// kept, and they hold the end of the output in order.
			var kept []byte
			for n := tc.files + 1; n >= 0; n-- {
				b, err := os.ReadFile(rotatedName(path, n))
				if os.IsNotExist(err) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if n > tc.files {
					t.Fatalf("%s kept, want at most %d rotated files", rotatedName(path, n), tc.files)
				}
				if int64(len(b)) > tc.max {
					t.Fatalf("%s has %d bytes, cap %d", rotatedName(path, n), len(b), tc.max)
				}
				if !tc.longLine && len(b) > 0 && b[len(b)-1] != '\n' {
					t.Fatalf("%s ends inside a line: %q", rotatedName(path, n), b)
				}
				kept = append(kept, b...)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != tc.wantFiles {
				t.Fatalf("%d files, want %d", len(entries), tc.wantFiles)
			}
			if !bytes.HasSuffix(data, kept) {
				t.Fatalf("kept output %q is not the end of what was written", kept)
			}
			if tc.files > 0 && int64(len(kept)) < int64(tc.files)*tc.max/2 && len(kept) < len(data) {
				t.Fatalf("kept only %d bytes of %d", len(kept), len(data))
			}
		})
	}
}

func TestReadLogTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "output.log")
	if b, err := readLogTail(path, 3, 10); err != nil || len(b) != 0 {
		t.Fatalf("missing log: %q, %v", b, err)
	}
	must := func(name, s string) {
		if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	must(path+".2", "a\nb\n")
	must(path+".1", "c\nd\n")
	must(path, "e\nf") // a last line without newline
	for _, tc := range []struct {
		tail, files int
		want        string
	}{
		{0, 3, "e\nf"},
		{1, 3, "f"},
		{2, 3, "e\nf"},
		{3, 3, "d\ne\nf"},
		{5, 3, "b\nc\nd\ne\nf"},
		{100, 3, "a\nb\nc\nd\ne\nf"},
		{100, 1, "c\nd\ne\nf"},
		{100, 0, "e\nf"},
	} {
		b, err := readLogTail(path, tc.files, tc.tail)
		if err != nil || string(b) != tc.want {
			t.Errorf("readLogTail(tail %d, files %d) = %q, %v; want %q", tc.tail, tc.files, b, err, tc.want)
		}
	}
	// The current file rotated away just now: the tail still comes from
	// the older ones.
	os.Remove(path)
	if b, _ := readLogTail(path, 3, 1); string(b) != "d\n" {
		t.Errorf("tail with no current file = %q", b)
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\n", 1, "a\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb\n"},
		{"\n\n\n", 2, "\n\n"},
	} {
		if got := string(lastLines([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
