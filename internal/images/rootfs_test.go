package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/novacron/novacron"
)

// ent is one entry of a test tarball.
type ent struct {
	tar.Header
	body string
}

func file(name, body string) ent {
	return ent{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body}
}

func dir(name string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func symlink(name, target string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o755}}
}

func special(typ byte, name string) ent {
	return ent{Header: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: 1, Devminor: 3}}
}

func withMode(e ent, mode int64) ent { e.Mode = mode; return e }

// tarOf writes the entries as a tar archive.
func tarOf(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, e := range ents {
		h := e.Header
		if err := w.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstdOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// busybox is a small tree like a busybox rootfs: directories with their
// modes, a set-uid binary, relative and absolute symbolic links, hard
// links, a directory that is listed twice, parents only implied, a long
// name.
func busybox() []ent {
	deep := strings.Repeat(strings.Repeat("d", 200)+"/", 19) + "f" // 3820 bytes: PAX
	return []ent{
		dir("./"),
		dir("./bin/"),
		withMode(file("./bin/busybox", "\x7fELF busybox"), 0o4755),
		symlink("./bin/sh", "busybox"),
		symlink("./bin/ls", "/bin/busybox"),
		hardlink("./bin/cat", "./bin/busybox"),
		hardlink("bin/echo", "bin/cat"),
		dir("./etc/"),
		file("./etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
		file("etc//group", "root:x:0:\n"),
		symlink("./etc/mtab", "/proc/self/mounts"),
		dir("./etc/"),
		withMode(dir("./tmp/"), 0o1777),
		withMode(dir("./root/"), 0o700),
		dir("./usr/"),
		dir("./usr/lib/"),
		symlink("./lib", "usr/lib"),
		symlink("./usr/bin", "../bin"),
		symlink("./usr/lib/libc.so", "../../lib/../usr/lib/libc.so.6"),
		symlink("./usr/lib/self", "."),
		file("./usr/lib/libc.so.6", strings.Repeat("x", 5000)),
		file("var/log/empty", ""),
		symlink("./var/run", "../run"),
		file(deep, "deep"),
	}
}

func TestCheckRootfsGood(t *testing.T) {
	plain := tarOf(t, busybox()...)
	gnu := busybox()
	for i := range gnu {
		gnu[i].Format = tar.FormatGNU
	}
	global := append([]ent{{Header: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": "0123abcd"}}}}, busybox()...)
	for name, b := range map[string][]byte{
		"tar":          plain,
		"gzip":         gzipped(t, plain),
		"zstd":         zstdOf(t, plain),
		"two gzips":    append(gzipped(t, plain[:512*3]), gzipped(t, plain[512*3:])...),
		"GNU format":   tarOf(t, gnu...),
		"padded":       append(bytes.Clone(plain), make([]byte, 10240)...),
		"git archive":  tarOf(t, global...),
		"one file":     tarOf(t, file("hello", "hi")),
		"root only":    tarOf(t, dir(".")),
		"no end block": plain[:len(plain)-1024],
	} {
		t.Run(name, func(t *testing.T) {
			if err := CheckRootfs(context.Background(), bytes.NewReader(b), RootfsLimits{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// paxSparse is an archive of one file that PAX records say is sparse (in
// a version of the format tar does not know, so that it hands them on).
// tar.Writer drops such records: the PAX header is written by hand.
func paxSparse(t *testing.T) []byte {
	var recs string
	for _, kv := range []string{"GNU.sparse.major=9", "GNU.sparse.minor=0"} {
		n := len(kv) + 4 // "NN " and "\n"
		recs += strconv.Itoa(n) + " " + kv + "\n"
	}
	b := tarOf(t, file("PaxHeaders/sparse", recs), file("sparse", "x"))
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func TestCheckRootfsBad(t *testing.T) {
	long := strings.Repeat("a/", MaxRootfsPath/2) + "b"
	for _, tc := range []struct {
		name    string
		archive []byte
		lim     RootfsLimits
		entry   string // the entry the error names, quoted; "" for none
		want    string // in the message
	}{
		{name: "absolute name", archive: tarOf(t, dir("etc/"), file("/etc/passwd", "x")),
			entry: `"/etc/passwd"`, want: "the name is absolute"},
		{name: "dot dot", archive: tarOf(t, file("../etc/passwd", "x")),
			entry: `"../etc/passwd"`, want: `the name has a ".." component`},
		{name: "dot dot that stays inside", archive: tarOf(t, dir("a/"), file("a/../b", "x")),
			entry: `"a/../b"`, want: `".." component`},
		{name: "dot dot deep", archive: tarOf(t, file("./a/b/../../../x", "x")),
			entry: `"./a/b/../../../x"`, want: `".." component`},
		{name: "character device", archive: tarOf(t, dir("dev/"), special(tar.TypeChar, "dev/null")),
			entry: `"dev/null"`, want: "a character device node"},
		{name: "block device", archive: tarOf(t, special(tar.TypeBlock, "dev/sda")),
			entry: `"dev/sda"`, want: "a block device node"},
		{name: "fifo", archive: tarOf(t, special(tar.TypeFifo, "run/initctl")),
			entry: `"run/initctl"`, want: "a FIFO"},
		{name: "contiguous file", archive: tarOf(t, special(tar.TypeCont, "x")),
			entry: `"x"`, want: "unsupported type '7'"},
		{name: "volume label", archive: tarOf(t, special('V', "label")),
			entry: `"label"`, want: "unsupported type 'V'"},
		{name: "old GNU sparse file", archive: tarOf(t, ent{Header: tar.Header{Typeflag: tar.TypeGNUSparse, Name: "sparse", Format: tar.FormatGNU}}),
			entry: `"sparse"`, want: "a sparse file"},
		{name: "PAX sparse file", archive: paxSparse(t), entry: `"sparse"`, want: "a sparse file"},
		{name: "global header that renames", archive: tarOf(t, ent{Header: tar.Header{Typeflag: tar.TypeXGlobalHeader,
			Name: "pax_global_header", PAXRecords: map[string]string{"comment": "ok", "path": "/etc/shadow"}}}, file("a", "x")),
			want: `a PAX global header sets "path"`},
		{name: "symlink up and out", archive: tarOf(t, dir("bin/"), symlink("bin/x", "../../etc/shadow")),
			entry: `"bin/x"`, want: `its target "../../etc/shadow" leaves the root`},
		{name: "symlink to the parent of the root", archive: tarOf(t, symlink("x", "..")),
			entry: `"x"`, want: "leaves the root"},
		{name: "symlink out and back", archive: tarOf(t, symlink("usr/x", "../../usr/lib")),
			entry: `"usr/x"`, want: "leaves the root"},
		{name: "absolute symlink above the root", archive: tarOf(t, symlink("x", "/../etc/shadow")),
			entry: `"x"`, want: "leaves the root"},
		{name: "symlink without target", archive: tarOf(t, symlink("x", "")),
			entry: `"x"`, want: "no target"},
		{name: "symlink target too long", archive: tarOf(t, symlink("x", strings.Repeat("y", MaxRootfsPath+1))),
			entry: `"x"`, want: "its target is longer than 4096 bytes"},
		{name: "hard link to an absolute path", archive: tarOf(t, hardlink("shadow", "/etc/shadow")),
			entry: `"shadow"`, want: `its target "/etc/shadow": the name is absolute`},
		{name: "hard link up and out", archive: tarOf(t, hardlink("shadow", "../etc/shadow")),
			entry: `"shadow"`, want: `".." component`},
		{name: "hard link to nothing", archive: tarOf(t, hardlink("a", "b")),
			entry: `"a"`, want: `its target "b" is not an earlier entry`},
		{name: "hard link to a later entry", archive: tarOf(t, hardlink("a", "b"), file("b", "x")),
			entry: `"a"`, want: "not an earlier entry"},
		{name: "hard link to a directory", archive: tarOf(t, dir("d/"), hardlink("a", "d")),
			entry: `"a"`, want: `its target "d" is not a regular file`},
		{name: "hard link to an implied directory", archive: tarOf(t, file("d/f", "x"), hardlink("a", "d")),
			entry: `"a"`, want: "not a regular file"},
		{name: "hard link to a symlink", archive: tarOf(t, symlink("s", "/etc/shadow"), hardlink("a", "s")),
			entry: `"a"`, want: "not a regular file"},
		{name: "hard link to itself", archive: tarOf(t, file("a", "x"), hardlink("./a", "a")),
			entry: `"./a"`, want: "it links to itself"},
		{name: "hard link to the root", archive: tarOf(t, hardlink("a", "./")),
			entry: `"a"`, want: "not an earlier entry"},
		{name: "write through a symlink", archive: tarOf(t, dir("usr/lib/"), symlink("lib", "usr/lib"), file("lib/libc.so", "x")),
			entry: `"lib/libc.so"`, want: `its parent "lib" is a symbolic link`},
		{name: "write through an absolute symlink", archive: tarOf(t, symlink("etc", "/etc"), file("etc/passwd", "x")),
			entry: `"etc/passwd"`, want: `its parent "etc" is a symbolic link`},
		{name: "write deep through a symlink", archive: tarOf(t, symlink("a/b", "."), file("a/b/c/d", "x")),
			entry: `"a/b/c/d"`, want: `its parent "a/b" is a symbolic link`},
		{name: "file under a file", archive: tarOf(t, file("a", "x"), file("a/b", "y")),
			entry: `"a/b"`, want: `its parent "a" is not a directory`},
		{name: "file twice", archive: tarOf(t, file("a", "x"), file("./a", "y")),
			entry: `"./a"`, want: "it replaces an earlier entry"},
		{name: "symlink over a file", archive: tarOf(t, file("a", "x"), symlink("a", "/etc/shadow")),
			entry: `"a"`, want: "replaces an earlier entry"},
		{name: "symlink over a directory", archive: tarOf(t, dir("a"), symlink("a", "/")),
			entry: `"a"`, want: "replaces an earlier entry"},
		{name: "symlink over an implied directory", archive: tarOf(t, file("a/f", "x"), symlink("a", "/")),
			entry: `"a"`, want: "replaces an earlier entry"},
		{name: "directory over a symlink", archive: tarOf(t, symlink("a", "/"), dir("a")),
			entry: `"a"`, want: "replaces an earlier entry"},
		{name: "root as a file", archive: tarOf(t, file(".", "x")),
			entry: `"."`, want: "the root is not a directory"},
		{name: "root as a symlink", archive: tarOf(t, symlink(".", "/")),
			entry: `"."`, want: "the root is not a directory"},
		{name: "name too long", archive: tarOf(t, file(long+"x", "x")),
			entry: quoteEntry(long + "x"), want: "the name is longer than 4096 bytes"},
		{name: "component too long", archive: tarOf(t, file(strings.Repeat("c", 256), "x")),
			entry: quoteEntry(strings.Repeat("c", 256)), want: "a component of the name is longer than 255 bytes"},
		{name: "too many entries", archive: tarOf(t, dir("a"), dir("b"), dir("c"), dir("d")), lim: RootfsLimits{MaxEntries: 3},
			want: "more than 3 entries"},
		{name: "too many implied directories", archive: tarOf(t, file("a/b/c/d", "x")), lim: RootfsLimits{MaxEntries: 3},
			want: "more than 3 entries"},
		{name: "no entries", archive: tarOf(t), want: "the archive has no entries"},
		{name: "data after the end", archive: append(tarOf(t, file("a", "x")), tarOf(t, file("b", "y"))...),
			want: "data follows the end of the archive"},
		{name: "junk", archive: bytes.Repeat([]byte("junk"), 1024), want: "not a tar archive"},
		{name: "short junk", archive: []byte("x"), want: "not a tar archive"},
		{name: "gzip junk", archive: gzipped(t, bytes.Repeat([]byte("junk"), 1024)), want: "the gzip stream holds no tar archive"},
		{name: "zstd junk", archive: zstdOf(t, bytes.Repeat([]byte("junk"), 1024)), want: "the zstd stream holds no tar archive"},
		{name: "xz", archive: append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 1024)...), want: "not a tar archive"},
		{name: "truncated", archive: tarOf(t, file("a", strings.Repeat("x", 2048)))[:1024], want: "the archive is truncated"},
		{name: "truncated gzip", archive: func() []byte { b := gzipped(t, tarOf(t, busybox()...)); return b[:len(b)/2] }(),
			want: "truncated"},
		{name: "corrupt gzip", archive: func() []byte { b := gzipped(t, tarOf(t, busybox()...)); b[len(b)-5] ^= 0xff; return b }(),
			want: "the gzip stream is corrupt"},
		{name: "gzip then junk", archive: append(gzipped(t, tarOf(t, file("a", "x"))), "junkjunkjunk"...),
			want: "the gzip stream is corrupt"},
		{name: "zstd then junk", archive: append(zstdOf(t, tarOf(t, file("a", "x"))), "junkjunk"...),
			want: "the zstd stream is corrupt"},
		{name: "bad checksum", archive: func() []byte { b := tarOf(t, file("a", "x"), file("b", "y")); b[1024+148] ^= 1; return b }(),
			want: "a tar header is corrupt"},
		{name: "escaped name", archive: tarOf(t, file("evil\n\x1b[31m\xff/../x", "x")),
			entry: `"evil\n\x1b[31m\xff/../x"`, want: `".." component`},
		{name: "long bad name", archive: tarOf(t, file("/"+strings.Repeat("n", 1000), "x")),
			entry: `"/` + strings.Repeat("n", 255) + `"...`, want: "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRootfs(context.Background(), bytes.NewReader(tc.archive), tc.lim)
			wantCode(t, err, novacron.EInvalid)
			msg := novacron.ErrorMessage(err)
			if !strings.HasPrefix(msg, "not a valid rootfs image: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q, want it to say %q", msg, tc.want)
			}
			if strings.ContainsFunc(msg, func(r rune) bool { return r < ' ' || r >= 0x7f }) {
				t.Errorf("message %q is not printable ASCII", msg)
			}
			var e *novacron.Error
			errors.As(err, &e)
			if tc.entry == "" {
				if _, ok := e.Details["entry"]; ok {
					t.Errorf("details %v name an entry", e.Details)
				}
				return
			}
			if e.Details["entry"] != tc.entry || !strings.Contains(msg, "entry "+tc.entry+": ") {
				t.Errorf("message %q, details %v; want entry %s", msg, e.Details, tc.entry)
			}
		})
	}
}

func TestCheckRootfsUnpackedLimit(t *testing.T) {
	big := tarOf(t, file("zeros", string(make([]byte, 1<<20))))
	for name, b := range map[string][]byte{"tar": big, "gzip": gzipped(t, big), "zstd": zstdOf(t, big)} {
		t.Run(name, func(t *testing.T) {
			err := CheckRootfs(context.Background(), bytes.NewReader(b), RootfsLimits{MaxUnpacked: 512 << 10})
			wantCode(t, err, novacron.ETooLarge)
			if !strings.Contains(novacron.ErrorMessage(err), "unpacks to more than 524288 bytes") {
				t.Errorf("message %q", novacron.ErrorMessage(err))
			}
			if err := CheckRootfs(context.Background(), bytes.NewReader(b), RootfsLimits{MaxUnpacked: int64(len(big))}); err != nil {
				t.Errorf("exactly the limit: %v", err)
			}
		})
	}
	// The default bound follows the upload limit.
	if l := (RootfsLimits{}).withDefaults(1 << 30); l.MaxUnpacked != 8<<30 || l.MaxEntries != DefaultMaxRootfsEntries {
		t.Errorf("defaults %+v", l)
	}
	for _, limit := range []int64{DefaultMaxSize, 1 << 62} {
		if l := (RootfsLimits{}).withDefaults(limit); l.MaxUnpacked != DefaultMaxRootfsUnpacked {
			t.Errorf("defaults for an upload limit of %d: %+v", limit, l)
		}
	}
}

func TestCheckRootfsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := CheckRootfs(ctx, bytes.NewReader(tarOf(t, busybox()...)), RootfsLimits{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CheckRootfs with a cancelled context = %v", err)
	}
}

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want, why string }{
		{"a", "a", ""},
		{"./a//b/./c/", "a/b/c", ""},
		{".", ".", ""},
		{"./", ".", ""},
		{".//.", ".", ""},
		{"", "", "the name is empty"},
		{"/a", "", "the name is absolute"},
		{"a/..", "", `the name has a ".." component`},
		{"..a/b..", "..a/b..", ""},
		{"a\x00b", "", "the name contains a NUL byte"},
		{"a\\..\\b", "a\\..\\b", ""}, // a backslash is a character
	} {
		got, why := cleanName(tc.in)
		if got != tc.want || why != tc.why {
			t.Errorf("cleanName(%q) = %q, %q; want %q, %q", tc.in, got, why, tc.want, tc.why)
		}
	}
}

func TestCheckSymlink(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		ok           bool
	}{
		{"a", "b", true},
		{"a", ".", true},
		{"a", "..", false},
		{"a/b", "..", true},
		{"a/b", "../..", false},
		{"a/b", "../c/../..", false},
		{"a/b/c", "../../x/../y", true},
		{"a", "/", true},
		{"a", "/etc/../bin", true},
		{"a", "/..", false},
		{"a/b/c", "/../b", false},
		{"a", "//x//", true},
		{"a", "x\x00", false},
		{"a", "", false},
	} {
		why := checkSymlink(tc.name, tc.target)
		if (why == "") != tc.ok {
			t.Errorf("checkSymlink(%q, %q) = %q; want ok %v", tc.name, tc.target, why, tc.ok)
		}
	}
}

// countingReader counts what is read of r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestUploadRootfs(t *testing.T) {
	c := context.Background()
	up := func(f *fixture, name string, body io.Reader, cmd []string) (*novacron.Image, error) {
		return f.s.Upload(c, UploadRequest{Name: name, Format: novacron.ImageRootfs, TenantID: f.tenant.ID, Size: -1,
			Command: cmd}, body)
	}
	t.Run("good, with a command", func(t *testing.T) {
		f := newFixture(t, Config{})
		cmd := []string{"/bin/sh", "-c", "echo hi"}
		img, err := up(f, "busybox", bytes.NewReader(zstdOf(t, tarOf(t, busybox()...))), cmd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.s.Get(c, novacron.TenantScope(f.tenant.ID), img.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(img.Command, cmd) || !slices.Equal(got.Command, cmd) {
			t.Errorf("command %q, stored %q; want %q", img.Command, got.Command, cmd)
		}
		img, err = up(f, "plain", bytes.NewReader(tarOf(t, busybox()...)), nil)
		if err != nil || img.Command != nil {
			t.Fatalf("without a command: %+v, %v", img, err)
		}
	})
	t.Run("bad command", func(t *testing.T) {
		f := newFixture(t, Config{})
		_, err := up(f, "x", failingReader{t}, []string{"sh"})
		wantCode(t, err, novacron.EInvalid)
		_, err = f.s.Upload(c, UploadRequest{Name: "k", Format: novacron.ImageKernel, TenantID: f.tenant.ID, Size: -1,
			Command: []string{"/bin/sh"}}, failingReader{t})
		wantCode(t, err, novacron.EInvalid)
		var e *novacron.Error
		if !errors.As(err, &e) || e.Details["field"] != "command" {
			t.Errorf("error %v does not name the command", err)
		}
	})
	t.Run("refused while streaming", func(t *testing.T) {
		// A bad first entry and then an endless body: the upload ends
		// at the entry, having read little of it.
		f := newFixture(t, Config{})
		head := tarOf(t, special(tar.TypeBlock, "dev/sda"))
		body := &countingReader{r: io.MultiReader(bytes.NewReader(head[:512]), zeros{})}
		_, err := up(f, "x", body, nil)
		wantCode(t, err, novacron.EInvalid)
		if !strings.Contains(novacron.ErrorMessage(err), `entry "dev/sda": a block device node`) {
			t.Errorf("message %q", novacron.ErrorMessage(err))
		}
		if body.n > 4<<20 {
			t.Errorf("read %d bytes of a refused upload", body.n)
		}
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
		// Compressed, the same.
		body = &countingReader{r: io.MultiReader(bytes.NewReader(gzipped(t, head)), zeros{})}
		_, err = up(f, "x", body, nil)
		wantCode(t, err, novacron.EInvalid)
		if body.n > 4<<20 {
			t.Errorf("read %d bytes of a refused gzip upload", body.n)
		}
	})
	t.Run("refused at the end", func(t *testing.T) {
		f := newFixture(t, Config{})
		b := append(tarOf(t, busybox()...), tarOf(t, file("hidden", "x"))...)
		_, err := up(f, "x", bytes.NewReader(gzipped(t, b)), nil)
		wantCode(t, err, novacron.EInvalid)
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
	})
	t.Run("unpacks to too much", func(t *testing.T) {
		// 64 KiB of upload may unpack to 512 KiB.
		f := newFixture(t, Config{MaxSize: 64 << 10})
		b := zstdOf(t, tarOf(t, file("zeros", string(make([]byte, 1<<20)))))
		_, err := up(f, "x", bytes.NewReader(b), nil)
		wantCode(t, err, novacron.ETooLarge)
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
		b = zstdOf(t, tarOf(t, file("zeros", string(make([]byte, 400<<10)))))
		if _, err := up(f, "fits", bytes.NewReader(b), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("size limit still first", func(t *testing.T) {
		f := newFixture(t, Config{MaxSize: 4096})
		_, err := up(f, "x", bytes.NewReader(tarOf(t, file("f", string(make([]byte, 8192))))), nil)
		wantCode(t, err, novacron.ETooLarge)
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		f := newFixture(t, Config{})
		ctx, cancel := context.WithCancel(c)
		body := io.MultiReader(bytes.NewReader(tarOf(t, busybox()...)[:2048]), iotestErr{cancel})
		_, err := f.s.Upload(ctx, UploadRequest{Name: "x", Format: novacron.ImageRootfs, TenantID: f.tenant.ID, Size: -1}, body)
		if err == nil {
			t.Fatal("an upload cut short succeeded")
		}
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a failed upload left %v", files)
		}
	})
}

// iotestErr cancels the upload's context and fails, as a body does when
// its client goes.
type iotestErr struct{ cancel context.CancelFunc }

func (r iotestErr) Read([]byte) (int, error) {
	r.cancel()
	return 0, errors.New("connection reset")
}

func TestValidateRootfs(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		b  []byte
		ok bool
	}{
		"good": {gzipped(t, tarOf(t, busybox()...)), true},
		"bad":  {tarOf(t, symlink("x", "../..")), false},
	} {
		p := dir + "/" + name
		if err := os.WriteFile(p, tc.b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := Validate(context.Background(), p, novacron.ImageRootfs, InspectLimits{})
		if (err == nil) != tc.ok {
			t.Errorf("Validate %s = %v", name, err)
		}
	}
}

// FuzzCheckRootfs feeds the check arbitrary archives: it decides without
// panicking, with a coded error, and a plain tar archive it accepts holds,
// read again by archive/tar, only local names of the allowed types and
// symbolic links that stay inside the root.
func FuzzCheckRootfs(f *testing.F) {
	t := &testing.T{}
	f.Add(tarOf(t, busybox()...))
	f.Add(tarOf(t, symlink("a/b", "../x"), hardlink("c", "a/b"), dir("a")))
	f.Add(gzipped(t, tarOf(t, file("a", "x"), file("b/c", "y"))))
	f.Add(paxSparse(t))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckRootfs(context.Background(), bytes.NewReader(b), RootfsLimits{MaxEntries: 1000, MaxUnpacked: 1 << 20})
		if err != nil {
			if c := novacron.ErrorCode(err); c != novacron.EInvalid && c != novacron.ETooLarge {
				t.Fatalf("error %v (code %s)", err, c)
			}
			return
		}
		if bytes.HasPrefix(b, gzipMagic) || bytes.HasPrefix(b, zstdMagic) {
			return
		}
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("accepted, but tar reads: %v", err)
			}
			if h.Typeflag == tar.TypeXGlobalHeader {
				continue
			}
			if n := path.Clean(h.Name); n != "." && !filepath.IsLocal(n) {
				t.Fatalf("accepted the name %q", h.Name)
			}
			switch h.Typeflag {
			case tar.TypeReg, tar.TypeDir, tar.TypeLink:
			case tar.TypeSymlink:
				target := h.Linkname
				if path.IsAbs(target) {
					target = "." + target
				} else {
					target = path.Join(path.Dir(path.Clean(h.Name)), target)
				}
				if target = path.Clean(target); target == ".." || strings.HasPrefix(target, "../") {
					t.Fatalf("accepted the link %q -> %q", h.Name, h.Linkname)
				}
			default:
				t.Fatalf("accepted %q of type %q", h.Name, h.Typeflag)
			}
		}
	})
}
