package container

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/novacron/novacron/internal/testenv"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "unpacking a rootfs keeps its owners, and mounting an overlay needs root")
	}
}

// member is one entry of a test tarball.
type member struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
}

var mtime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func tarball(t *testing.T, members []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := m.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: m.name, Typeflag: typ, Mode: mode, Uid: m.uid, Gid: m.gid, Linkname: m.link,
			ModTime: mtime, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(m.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	if _, err := z.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t *testing.T, b []byte) []byte {
	z, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	return z.EncodeAll(b, nil)
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var goodRootfs = []member{
	{name: "./", typ: tar.TypeDir, mode: 0o755},
	{name: "bin/", typ: tar.TypeDir},
	{name: "bin/busybox", body: "#!/bin/true\n", mode: 0o755},
	{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
	{name: "bin/su", typ: tar.TypeLink, link: "bin/busybox"},
	{name: "bin/passwd", body: "setuid", mode: 0o4755},
	{name: "etc/hostname", body: "image\n"}, // parent without an entry of its own
	{name: "etc/mtab", typ: tar.TypeSymlink, link: "/proc/self/mounts"},
	{name: "home/app/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
	{name: "home/app/notes", body: "mine", mode: 0o600, uid: 1000, gid: 1000},
	{name: "var/tmp/", typ: tar.TypeDir, mode: 0o1777},
	{name: "var/mail/", typ: tar.TypeDir, mode: 0o2775, gid: 8},
	{name: "./etc/./hostname", body: "replaced\n"}, // a later member wins
	{name: "empty", body: ""},
}

func TestUnpackRootfs(t *testing.T) {
	requireRoot(t)
	plain := tarball(t, goodRootfs)
	for name, data := range map[string][]byte{"tar": plain, "gzip": gzipped(t, plain), "zstd": zstded(t, plain)} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "cache", "rootfs")
			if err := unpackRootfs(writeFile(t, dir, "image", data), dest); err != nil {
				t.Fatalf("unpackRootfs: %v", err)
			}
			checkTree(t, dest, map[string]string{
				".":              "drwxr-xr-x 0:0",
				"bin":            "drwxr-xr-x 0:0",
				"bin/busybox":    "-rwxr-xr-x 0:0 #!/bin/true\n",
				"bin/sh":         "L busybox 0:0",
				"bin/su":         "-rwxr-xr-x 0:0 #!/bin/true\n",
				"bin/passwd":     "-rwxr-xr-x 0:0 setuid", // setuid dropped
				"etc":            "drwxr-xr-x 0:0",
				"etc/hostname":   "-rw-r--r-- 0:0 replaced\n",
				"etc/mtab":       "L /proc/self/mounts 0:0",
				"home":           "drwxr-xr-x 0:0",
				"home/app":       "drwxr-x--- 1000:1000",
				"home/app/notes": "-rw------- 1000:1000 mine",
				"var":            "drwxr-xr-x 0:0",
				"var/tmp":        "dtrwxrwxrwx 0:0",
				"var/mail":       "dgrwxrwxr-x 0:8",
				"empty":          "-rw-r--r-- 0:0 ",
			})
			a, _ := os.Stat(filepath.Join(dest, "bin/busybox"))
			b, _ := os.Stat(filepath.Join(dest, "bin/su"))
			if !os.SameFile(a, b) {
				t.Error("bin/su is not a hard link of bin/busybox")
			}
			for _, n := range []string{"bin/busybox", "home/app", "bin", "."} {
				fi, _ := os.Lstat(filepath.Join(dest, n))
				if !fi.ModTime().Equal(mtime) {
					t.Errorf("%s mtime %v, want %v", n, fi.ModTime(), mtime)
				}
			}
			if fi, _ := os.Lstat(filepath.Join(dest, "bin/sh")); !fi.ModTime().Equal(mtime) {
				t.Errorf("symlink mtime %v, want %v", fi.ModTime(), mtime)
			}
			if fi, err := os.Stat(filepath.Dir(dest)); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("dest's new parent: %v %v, want mode 0700", fi.Mode(), err)
			}
			checkNoLeftovers(t, filepath.Dir(dest), "rootfs")
		})
	}
}

// checkTree compares the tree at dir with want: "type+mode uid:gid content"
// for files, "L target uid:gid" for symlinks; every entry must be listed.
func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		owner := " " + strconv.FormatUint(uint64(st.Uid), 10) + ":" + strconv.FormatUint(uint64(st.Gid), 10)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			got[rel] = "L " + target + owner
		case fi.IsDir():
			got[rel] = fi.Mode().String() + owner
		default:
			b, _ := os.ReadFile(p)
			got[rel] = fi.Mode().String() + owner + " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s: %q", k, g)
		}
	}
}

func checkNoLeftovers(t *testing.T, parent, base string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(parent, "."+base+".unpack-*"))
	if len(left) != 0 {
		t.Errorf("temporary directories left: %q", left)
	}
}

func TestUnpackRootfsRefuses(t *testing.T) {
	requireRoot(t)
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		members []member
		want    string // in the error
	}{
		{"absolute name", []member{{name: "/etc/x", body: "x"}}, "absolute"},
		{"dotdot", []member{{name: "a/../../x", body: "x"}}, "'..'"},
		{"dotdot that cleans away", []member{{name: "a/../x", body: "x"}}, "'..'"},
		{"char device", []member{{name: "dev/null", typ: tar.TypeChar}}, "device"},
		{"block device", []member{{name: "dev/sda", typ: tar.TypeBlock}}, "device"},
		{"fifo", []member{{name: "run/fifo", typ: tar.TypeFifo}}, "fifo"},
		{"hard link out", []member{{name: "x", typ: tar.TypeLink, link: "../outside"}}, "'..'"},
		{"hard link absolute", []member{{name: "x", typ: tar.TypeLink, link: "/etc/passwd"}}, "absolute"},
		{"write through an absolute symlink", []member{
			{name: "evil", typ: tar.TypeSymlink, link: outside},
			{name: "evil/pwned", body: "x"}}, "evil/pwned"},
		{"write through a relative symlink out", []member{
			{name: "a/evil", typ: tar.TypeSymlink, link: "../../../../../../../../.." + outside},
			{name: "a/evil/pwned", body: "x"}}, "a/evil/pwned"},
		{"mkdir through a symlink out", []member{
			{name: "evil", typ: tar.TypeSymlink, link: outside},
			{name: "evil/d/", typ: tar.TypeDir}}, "evil/d"},
		{"hard link through a symlink out", []member{
			{name: "evil", typ: tar.TypeSymlink, link: "/etc"},
			{name: "pw", typ: tar.TypeLink, link: "evil/passwd"}}, "pw"},
		{"root not a directory", []member{{name: ".", body: "x"}}, "root"},
		{"symlink to nothing", []member{{name: "x", typ: tar.TypeSymlink}}, "symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "rootfs")
			err := unpackRootfs(writeFile(t, dir, "image", gzipped(t, tarball(t, tc.members))), dest)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("unpackRootfs = %v, want an error about %q", err, tc.want)
			}
			t.Log(err)
			if _, err := os.Lstat(dest); !os.IsNotExist(err) {
				t.Errorf("dest exists after a failed unpack: %v", err)
			}
			checkNoLeftovers(t, dir, "rootfs")
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Fatalf("an entry landed outside: %v", entries)
			}
			if _, err := os.Lstat("/etc/pwned"); err == nil {
				t.Fatal("/etc/pwned exists")
			}
		})
	}
}

// TestUnpackRootfsReplaced: a member replacing an earlier symbolic link
// replaces the link itself and never writes through it, and members under
// a symbolic link that stays inside land inside.
func TestUnpackRootfsReplaced(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "rootfs")
	members := []member{
		{name: "target", body: "original"},
		{name: "link", typ: tar.TypeSymlink, link: "target"},
		{name: "link", body: "replaced the link"},
		{name: "real/", typ: tar.TypeDir},
		{name: "alias", typ: tar.TypeSymlink, link: "real"},
		{name: "alias/f", body: "through an inner link"},
		{name: "d/", typ: tar.TypeDir, mode: 0o700},
		{name: "d/", typ: tar.TypeDir, mode: 0o755, uid: 7},
	}
	if err := unpackRootfs(writeFile(t, dir, "image", tarball(t, members)), dest); err != nil {
		t.Fatalf("unpackRootfs: %v", err)
	}
	checkTree(t, dest, map[string]string{
		".":      "drwxr-xr-x 0:0",
		"target": "-rw-r--r-- 0:0 original",
		"link":   "-rw-r--r-- 0:0 replaced the link",
		"real":   "drwxr-xr-x 0:0",
		"real/f": "-rw-r--r-- 0:0 through an inner link",
		"alias":  "L real 0:0",
		"d":      "drwxr-xr-x 7:0",
	})
}

func TestUnpackRootfsFailures(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "rootfs")
	good := tarball(t, goodRootfs)

	// An existing dest is never touched.
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unpackRootfs(writeFile(t, dir, "image", good), dest); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("unpackRootfs over an existing dest = %v", err)
	}
	if entries, _ := os.ReadDir(dest); len(entries) != 0 {
		t.Fatalf("an existing dest was written into: %v", entries)
	}
	os.Remove(dest)

	for name, data := range map[string][]byte{
		"truncated gzip": gzipped(t, good)[:200],
		"truncated tar":  good[:700],
		"xz":             {0xfd, '7', 'z', 'X', 'Z', 0, 0, 0},
		"junk":           bytes.Repeat([]byte("junk"), 200),
	} {
		err := unpackRootfs(writeFile(t, dir, "image", data), dest)
		if err == nil {
			t.Errorf("%s: unpackRootfs succeeded", name)
		}
		if _, err := os.Lstat(dest); !os.IsNotExist(err) {
			t.Errorf("%s: dest exists after a failed unpack", name)
		}
		checkNoLeftovers(t, dir, "rootfs")
	}

	// What an unpack interrupted by a crash left is cleared.
	stale := filepath.Join(dir, ".rootfs.unpack-123")
	if err := os.MkdirAll(filepath.Join(stale, "bin"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unpackRootfs(writeFile(t, dir, "image", good), dest); err != nil {
		t.Fatalf("unpackRootfs: %v", err)
	}
	checkNoLeftovers(t, dir, "rootfs")

	// Too big.
	defer func(n int64) { maxRootfsBytes = n }(maxRootfsBytes)
	maxRootfsBytes = 10
	if err := unpackRootfs(writeFile(t, dir, "image", good), filepath.Join(dir, "big")); err == nil || !strings.Contains(err.Error(), "more than 10 bytes") {
		t.Fatalf("unpackRootfs of a big image = %v", err)
	}
}
