package container

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Bounds of an unpacked rootfs image: the upload's size limit bounds the
// tarball, not what it expands to.
var (
	maxRootfsBytes   int64 = 64 << 30
	maxRootfsEntries       = 1 << 20
)

// maxZstdWindow bounds the memory a zstd frame may ask for (zstd --long=27).
const maxZstdWindow = 128 << 20

// unpackRootfs unpacks the rootfs tarball (tar, gzip or zstd, told apart by
// their magic numbers) into dest, which must not exist: into a temporary
// directory beside dest, synced and renamed to dest at the end, so that
// dest is a whole tree or absent even after a crash. dest's parent is made
// (mode 0700) when missing. Callers serialise unpacks of one dest: the
// leftovers of one that a crash interrupted are removed first.
//
// Every write goes through an os.Root of the temporary directory, so no
// entry lands outside it, through ".." or through a symbolic link unpacked
// earlier. Names that are absolute or contain "..", and device nodes, fifos
// and other special files, are errors (the upload refused them already: this
// is the second line). Regular files, directories, symbolic links and hard
// links are kept with their numeric owners, modes and modification times,
// but for the setuid and setgid bits of files, which are dropped: guests run
// with no_new_privs on a nosuid mount, so the bits would do nothing inside a
// container, while outside it the unpacked tree would hold a tenant's
// setuid-root programs on the host's disk. Extended attributes (file
// capabilities, ACLs, labels) are not unpacked.
//
// The tree's modes are not changed to make it read-only, although it is the
// shared lower layer of every container of the image: overlayfs shows the
// lower layer's modes and attribute flags to the guest (a 1777 /var/tmp
// would become unwritable, chattr +i shows through as well), and removing
// write bits would not stop root, the only user that can reach the tree.
// What keeps it intact is that nothing writes to it: overlayfs never writes
// to a lower layer, and the tree sits in a directory only root can enter.
func unpackRootfs(tarball, dest string) (err error) {
	dest = filepath.Clean(dest)
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("rootfs: unpack into %s: %w", dest, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rootfs: %w", err)
	}
	parent, base := filepath.Split(dest)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(parent, "."+base+".unpack-*"))
	for _, s := range stale {
		if err := os.RemoveAll(s); err != nil {
			return fmt.Errorf("rootfs: remove an interrupted unpack: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".unpack-*")
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()

	f, err := os.Open(tarball)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer f.Close()
	r, closeReader, err := decompress(f)
	if err != nil {
		return fmt.Errorf("rootfs: %s: %w", filepath.Base(tarball), err)
	}
	defer closeReader()

	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer root.Close()
	u := &unpacker{root: root, dirs: map[string]dirMeta{}}
	if err := u.unpack(tar.NewReader(r)); err != nil {
		return fmt.Errorf("rootfs: %s: %w", filepath.Base(tarball), err)
	}
	if err := u.finish(); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}

	// Data and metadata on disk before the name appears.
	d, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	err = unix.Syncfs(int(d.Fd()))
	d.Close()
	if err != nil {
		return fmt.Errorf("rootfs: sync: %w", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dest, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("rootfs: rename into place: %w", err)
	}
	if p, err := os.Open(parent); err == nil {
		_ = p.Sync()
		p.Close()
	}
	return nil
}

// decompress returns the tar stream inside r, told apart by magic number.
func decompress(f io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(f, 1<<16)
	head, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
			zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return z, z.Close, nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}), bytes.HasPrefix(head, []byte("BZh")):
		return nil, nil, errors.New("not a tar, gzip or zstd archive (xz and bzip2 are not supported)")
	}
	return br, func() {}, nil
}

// dirMeta is what a directory gets once every entry is in: its times (which
// the entries made inside it changed), checked to still be the inode that
// was made.
type dirMeta struct {
	atime, mtime time.Time
	dev, ino     uint64
}

type unpacker struct {
	root    *os.Root
	dirs    map[string]dirMeta
	bytes   int64
	entries int
	// rootHdr is the archive's entry for "." itself, if any.
	rootHdr *tar.Header
}

func (u *unpacker) unpack(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if u.entries++; u.entries > maxRootfsEntries {
			return fmt.Errorf("more than %d entries", maxRootfsEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid > 1<<32-2 || hdr.Gid > 1<<32-2 {
			return fmt.Errorf("%s: owner %d:%d out of range", name, hdr.Uid, hdr.Gid)
		}
		if name == "." {
			if hdr.Typeflag != tar.TypeDir {
				return errors.New("the archive's root is not a directory")
			}
			u.rootHdr = hdr
			continue
		}
		if err := u.entry(name, hdr, tr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// entryName is a member's name relative to the root, "." for the root, or an
// error for names that are absolute, climb with "..", or are empty.
func entryName(n string) (string, error) {
	if n == "" || strings.IndexByte(n, 0) >= 0 {
		return "", fmt.Errorf("entry %q: invalid name", n)
	}
	if path.IsAbs(n) {
		return "", fmt.Errorf("entry %q: absolute name", n)
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", fmt.Errorf("entry %q: name with '..'", n)
		}
	}
	return path.Clean(n), nil
}

func (u *unpacker) entry(name string, hdr *tar.Header, tr io.Reader) error {
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	special := fs.FileMode(0)
	if hdr.Mode&0o1000 != 0 {
		special |= fs.ModeSticky
	}
	if err := u.root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	old, err := u.root.Lstat(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if old != nil && !(old.IsDir() && hdr.Typeflag == tar.TypeDir) {
		// A later member replaces an earlier one; never write through it.
		if err := u.root.Remove(name); err != nil {
			return fmt.Errorf("replace an earlier entry: %w", err)
		}
		delete(u.dirs, name)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if hdr.Mode&0o2000 != 0 {
			special |= fs.ModeSetgid // on a directory: new entries take its group
		}
		if old == nil || !old.IsDir() {
			if err := u.root.Mkdir(name, 0o700); err != nil {
				return err
			}
		}
		if err := u.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if err := u.root.Chmod(name, mode|special); err != nil {
			return err
		}
		fi, err := u.root.Lstat(name)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t) // always on Linux
		u.dirs[name] = dirMeta{atime: atimeOf(hdr), mtime: hdr.ModTime, dev: uint64(st.Dev), ino: st.Ino}
		return nil

	case tar.TypeReg: // the reader turns the old TypeRegA into TypeReg
		if u.bytes += hdr.Size; u.bytes > maxRootfsBytes {
			return fmt.Errorf("the archive unpacks to more than %d bytes", maxRootfsBytes)
		}
		f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(f, tr, hdr.Size); err != nil {
			return err
		}
		// Owner before mode: chown clears setuid bits, and these are
		// dropped anyway (see unpackRootfs).
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if err := f.Chmod(mode | special); err != nil {
			return err
		}
		if err := unix.Futimes(int(f.Fd()), []unix.Timeval{
			unix.NsecToTimeval(atimeOf(hdr).UnixNano()), unix.NsecToTimeval(hdr.ModTime.UnixNano())}); err != nil {
			return err
		}
		return f.Close()

	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return errors.New("invalid symbolic link target")
		}
		// The target is not checked: it is resolved inside the container,
		// and the os.Root refuses to follow it out of the tree here.
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		if err := u.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		return u.setTimes(name, atimeOf(hdr), hdr.ModTime, nil)

	case tar.TypeLink:
		target, err := entryName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		if target == "." {
			return errors.New("hard link to the root")
		}
		return u.root.Link(target, name)

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return errors.New("device nodes and fifos are not allowed in a rootfs image")
	}
	return fmt.Errorf("entry type %q is not allowed in a rootfs image", hdr.Typeflag)
}

// finish gives the directories their times, now that nothing is added to
// them any more, and the root its owner and mode.
func (u *unpacker) finish() error {
	for name, m := range u.dirs {
		if err := u.setTimes(name, m.atime, m.mtime, &m); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	uid, gid, mode := 0, 0, fs.FileMode(0o755)
	if h := u.rootHdr; h != nil {
		uid, gid, mode = h.Uid, h.Gid, fs.FileMode(h.Mode)&fs.ModePerm
		if h.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
	}
	if err := u.root.Lchown(".", uid, gid); err != nil {
		return err
	}
	if err := u.root.Chmod(".", mode); err != nil {
		return err
	}
	if h := u.rootHdr; h != nil {
		return u.root.Chtimes(".", atimeOf(h), h.ModTime)
	}
	return nil
}

// setTimes sets name's times without following it when it is a symbolic
// link, through its parent directory opened inside the root. When want is
// set, name must still be that directory.
func (u *unpacker) setTimes(name string, atime, mtime time.Time, want *dirMeta) error {
	d, err := u.root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	fd, base := int(d.Fd()), path.Base(name)
	if want != nil {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if uint64(st.Dev) != want.dev || st.Ino != want.ino {
			return nil // replaced by a later entry, which has its own times
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func atimeOf(h *tar.Header) time.Time {
	if !h.AccessTime.IsZero() {
		return h.AccessTime
	}
	return h.ModTime
}
