package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/novacron/novacron"
)

// Limits of a rootfs tarball's entries.
const (
	// DefaultMaxRootfsEntries bounds a tarball's entries by default.
	DefaultMaxRootfsEntries = 1_000_000
	// MaxRootfsPath bounds an entry's name and a link's target, in bytes
	// (PATH_MAX).
	MaxRootfsPath = 4096
	// MaxRootfsNameComponent bounds one component of an entry's name, in
	// bytes (NAME_MAX).
	MaxRootfsNameComponent = 255
	// rootfsUnpackedFactor is how many times the upload limit the tar
	// stream may hold once decompressed, by default, up to
	// DefaultMaxRootfsUnpacked.
	rootfsUnpackedFactor = 8
	// DefaultMaxRootfsUnpacked caps the default bound of the decompressed
	// tar stream: what the container driver unpacks at most (64 GiB of
	// file contents), so that nothing accepted here fails there.
	DefaultMaxRootfsUnpacked = 64 << 30
	// zstdMaxWindow bounds the window of a zstd frame, and so the memory
	// decompressing it takes: the zstd tool's own default limit.
	zstdMaxWindow = 128 << 20
)

// RootfsLimits bound the check of a root file system tarball. The zero
// value takes the defaults.
type RootfsLimits struct {
	// MaxEntries bounds the paths of the tree: the entries and the
	// directories that only entries' names imply (default
	// DefaultMaxRootfsEntries).
	MaxEntries int
	// MaxUnpacked bounds the tar stream once decompressed, in bytes
	// (default 8 times the upload limit, DefaultMaxSize for CheckRootfs
	// alone, at most DefaultMaxRootfsUnpacked): a tarball that unpacks to
	// more is ETooLarge.
	MaxUnpacked int64
}

func (l RootfsLimits) withDefaults(maxSize int64) RootfsLimits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxRootfsEntries
	}
	if l.MaxUnpacked <= 0 {
		l.MaxUnpacked = DefaultMaxRootfsUnpacked
		if maxSize < DefaultMaxRootfsUnpacked/rootfsUnpackedFactor {
			l.MaxUnpacked = maxSize * rootfsUnpackedFactor
		}
	}
	return l
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// CheckRootfs reads a root file system tarball to its end and checks every
// entry, as it streams: nothing is buffered but the entries' names (as
// hashes). The tarball is a tar archive, plain or compressed with gzip or
// zstd (told apart by their magic numbers). It returns EInvalid naming the
// first bad entry and why, ETooLarge when the archive unpacks to more than
// lim.MaxUnpacked bytes, or the error that kept it from reading.
//
// The rules, in the terms of the tree the archive unpacks to:
//   - Entries are regular files, directories, symbolic links and hard
//     links. Device nodes, FIFOs, sparse files and any other type are
//     refused: a rootfs needs none of them (a container gets its /dev from
//     the runtime), and each is a way to reach or fill the host.
//   - A name is relative and stays inside the root: not absolute, no ".."
//     component, at most MaxRootfsPath bytes, no component longer than
//     MaxRootfsNameComponent, no NUL. "./" prefixes and repeated slashes
//     are fine. The root itself ("." or "./") may only be a directory.
//   - A name's parents are directories: never an earlier symbolic link
//     (so an unpacker never writes through a link) nor a file.
//   - An entry never replaces an earlier one, except a directory that
//     repeats a directory (its metadata).
//   - A symbolic link's target is at most MaxRootfsPath bytes without NUL
//     and, resolved lexically (without following other links), never goes
//     above the root: a relative target from the link's directory, an
//     absolute one from the root, which is where it points once the tree
//     is a container's root (and where os.Root keeps an unpacker). So
//     "/bin/busybox" and "../lib/x" (from usr/bin) are fine, "../../x"
//     from usr/bin and "/../x" are not.
//   - A hard link's target is the name of an earlier regular file (or of
//     an earlier hard link to one), under the same rules as a name, and
//     not the link itself.
//   - At most lim.MaxEntries paths, counting the directories that names
//     only imply.
//   - A PAX global header may carry only comment, charset and hdrcharset
//     records (git archive writes one); other PAX records, extended
//     attributes among them, are not checked.
//   - After the end of the archive come only zero bytes, and a compressed
//     stream ends cleanly.
func CheckRootfs(ctx context.Context, r io.Reader, lim RootfsLimits) error {
	lim = lim.withDefaults(DefaultMaxSize)
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(len(zstdMagic))
	var stream io.Reader = br
	compression := ""
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		compression = "gzip"
		zr, err := gzip.NewReader(br)
		if err != nil {
			return streamError(err, compression)
		}
		defer zr.Close()
		stream = zr
	case bytes.HasPrefix(magic, zstdMagic):
		compression = "zstd"
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return fmt.Errorf("images: zstd: %w", err)
		}
		defer zr.Close()
		stream = zr
	}
	u := &unpackedReader{ctx: ctx, r: stream, left: lim.MaxUnpacked + 1, max: lim.MaxUnpacked}
	err := checkTar(u, compression, lim)
	if u.err != nil {
		// The limit or the context ended the read, whatever the
		// readers above made of it.
		return u.err
	}
	return err
}

// checkTar checks the decompressed tar stream r.
func checkTar(r io.Reader, compression string, lim RootfsLimits) error {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := br.Peek(512)
	if len(h) == 512 && bytes.Count(h, []byte{0}) == 512 {
		return invalid(novacron.ImageRootfs, "the archive has no entries")
	}
	if len(h) < 512 || string(h[257:262]) != "ustar" {
		if err != nil && !errors.Is(err, io.EOF) {
			return streamError(err, compression)
		}
		if compression != "" {
			return invalid(novacron.ImageRootfs, "the %s stream holds no tar archive", compression)
		}
		return invalid(novacron.ImageRootfs, "not a tar archive, plain or compressed with gzip or zstd")
	}
	t := &tree{seed: maphash.MakeSeed(), kinds: map[uint64]entryKind{}, max: lim.MaxEntries}
	tr := tar.NewReader(br)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		// Next refuses names that are not local only when GODEBUG
		// says so, and then with the header: t.add names the reason.
		insecure := errors.Is(err, tar.ErrInsecurePath) && hdr != nil
		if err != nil && !insecure {
			return streamError(err, compression)
		}
		if err := t.add(hdr); err != nil {
			return err
		}
		if insecure {
			return badEntry(hdr.Name, "the name leaves the root")
		}
	}
	if t.entries == 0 {
		return invalid(novacron.ImageRootfs, "the archive has no entries")
	}
	// tar stops at the first two zero blocks; a tool that reads on
	// (tar --ignore-zeros) must not find more entries than were checked.
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if slices.ContainsFunc(buf[:n], func(b byte) bool { return b != 0 }) {
			return invalid(novacron.ImageRootfs, "data follows the end of the archive")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return streamError(err, compression)
		}
	}
}

// streamError is the error of a failed read of the archive.
func streamError(err error, compression string) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &novacron.Error{Code: novacron.EInvalid, Message: "not a valid rootfs image: the archive is truncated",
			Details: map[string]any{"field": "format"}, Err: err}
	case errors.Is(err, tar.ErrHeader):
		return &novacron.Error{Code: novacron.EInvalid, Message: "not a valid rootfs image: a tar header is corrupt",
			Details: map[string]any{"field": "format"}, Err: err}
	case compression != "":
		// What the decompressor reads is the upload itself, which only
		// fails when the upload is failing anyway.
		return &novacron.Error{Code: novacron.EInvalid, Message: "not a valid rootfs image: the " + compression + " stream is corrupt",
			Details: map[string]any{"field": "format"}, Err: err}
	}
	return fmt.Errorf("images: read rootfs: %w", err)
}

// unpackedReader bounds the decompressed stream and ends it when the
// context ends: a small compressed upload can unpack to a great deal.
type unpackedReader struct {
	ctx  context.Context
	r    io.Reader
	left int64 // bytes that may still be read, plus one
	max  int64
	err  error // what ended the stream, kept: the readers above may hide it
}

func (u *unpackedReader) Read(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	if err := u.ctx.Err(); err != nil {
		u.err = err
		return 0, err
	}
	if int64(len(p)) > u.left {
		p = p[:u.left]
	}
	n, err := u.r.Read(p)
	u.left -= int64(n)
	if u.left <= 0 {
		u.err = novacron.Errorf(novacron.ETooLarge, "the root file system unpacks to more than %d bytes", u.max)
		return n, u.err
	}
	return n, err
}

type entryKind uint8

const (
	kindDir entryKind = iota + 1
	kindFile
	kindSymlink
)

// tree is what the check remembers of the entries so far: the kind of
// every path, keyed by a seeded hash of its clean name (8 bytes a path,
// whatever its length; a collision, with a fresh random seed each time,
// could only refuse a good archive or let an unpacker fail).
type tree struct {
	seed  maphash.Seed
	kinds map[uint64]entryKind
	max   int
	// n counts the headers and the directories that names only imply;
	// entries counts the headers that are not global headers.
	n, entries int
}

// globalRecords are the PAX records a global header may carry: none of
// them changes an entry.
var globalRecords = []string{"comment", "charset", "hdrcharset"}

func (t *tree) count() error {
	t.n++
	if t.n > t.max {
		return invalid(novacron.ImageRootfs, "it has more than %d entries", t.max)
	}
	return nil
}

// add checks one entry against the rules of CheckRootfs and records it.
func (t *tree) add(hdr *tar.Header) error {
	if err := t.count(); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		keys := make([]string, 0, len(hdr.PAXRecords))
		for k := range hdr.PAXRecords {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !slices.Contains(globalRecords, k) {
				// Not badEntry: tar merged the records into the
				// header, its name included.
				return invalid(novacron.ImageRootfs, "a PAX global header sets %s", quoteEntry(k))
			}
		}
		return nil
	}
	t.entries++
	name, why := cleanName(hdr.Name)
	if why != "" {
		return badEntry(hdr.Name, why)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeChar:
		return badEntry(hdr.Name, "a character device node")
	case tar.TypeBlock:
		return badEntry(hdr.Name, "a block device node")
	case tar.TypeFifo:
		return badEntry(hdr.Name, "a FIFO")
	case tar.TypeGNUSparse:
		return badEntry(hdr.Name, "a sparse file")
	default:
		return badEntry(hdr.Name, "an entry of unsupported type "+strconv.QuoteRuneToASCII(rune(hdr.Typeflag)))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return badEntry(hdr.Name, "a sparse file")
		}
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return badEntry(hdr.Name, "the root is not a directory")
		}
		return nil // the root's own metadata
	}

	// Walk the parents, hashing the name as it goes.
	var h maphash.Hash
	h.SetSeed(t.seed)
	for i := 0; ; {
		j := strings.IndexByte(name[i:], '/')
		if j < 0 {
			h.WriteString(name[i:])
			break
		}
		h.WriteString(name[i : i+j])
		parent := name[:i+j]
		switch k := t.kinds[h.Sum64()]; k {
		case 0:
			// A directory only the name implies.
			if err := t.count(); err != nil {
				return err
			}
			t.kinds[h.Sum64()] = kindDir
		case kindDir:
		case kindSymlink:
			return badEntry(hdr.Name, "its parent "+quoteEntry(parent)+" is a symbolic link")
		default:
			return badEntry(hdr.Name, "its parent "+quoteEntry(parent)+" is not a directory")
		}
		h.WriteByte('/')
		i += j + 1
	}
	key := h.Sum64()

	kind := kindFile
	switch hdr.Typeflag {
	case tar.TypeDir:
		kind = kindDir
	case tar.TypeSymlink:
		kind = kindSymlink
		if why := checkSymlink(name, hdr.Linkname); why != "" {
			return badEntry(hdr.Name, why)
		}
	case tar.TypeLink:
		target, why := cleanName(hdr.Linkname)
		switch {
		case why != "":
			return badEntry(hdr.Name, "its target "+quoteEntry(hdr.Linkname)+": "+why)
		case target == name:
			return badEntry(hdr.Name, "it links to itself")
		}
		switch t.kinds[maphash.String(t.seed, target)] {
		case kindFile:
		case 0:
			return badEntry(hdr.Name, "its target "+quoteEntry(hdr.Linkname)+" is not an earlier entry")
		default:
			return badEntry(hdr.Name, "its target "+quoteEntry(hdr.Linkname)+" is not a regular file")
		}
	}
	switch prev := t.kinds[key]; {
	case prev == 0:
		t.kinds[key] = kind
	case prev == kindDir && kind == kindDir:
	default:
		return badEntry(hdr.Name, "it replaces an earlier entry")
	}
	return nil
}

// cleanName returns the clean form of an entry's name ("." for the root),
// or why it is refused.
func cleanName(name string) (string, string) {
	switch {
	case name == "":
		return "", "the name is empty"
	case len(name) > MaxRootfsPath:
		return "", fmt.Sprintf("the name is longer than %d bytes", MaxRootfsPath)
	case strings.IndexByte(name, 0) >= 0:
		return "", "the name contains a NUL byte"
	case name[0] == '/':
		return "", "the name is absolute"
	}
	var b strings.Builder
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return "", `the name has a ".." component`
		case len(c) > MaxRootfsNameComponent:
			return "", fmt.Sprintf("a component of the name is longer than %d bytes", MaxRootfsNameComponent)
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(c)
	}
	if b.Len() == 0 {
		return ".", ""
	}
	return b.String(), ""
}

// checkSymlink returns why the symbolic link at the clean name may not
// have target, or "".
func checkSymlink(name, target string) string {
	switch {
	case target == "":
		return "the symbolic link has no target"
	case len(target) > MaxRootfsPath:
		return fmt.Sprintf("its target is longer than %d bytes", MaxRootfsPath)
	case strings.IndexByte(target, 0) >= 0:
		return "its target contains a NUL byte"
	}
	// depth is how far below the root the resolution is.
	depth := 0
	if target[0] != '/' {
		depth = strings.Count(name, "/") // the link's directory
	}
	for c := range strings.SplitSeq(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "its target " + quoteEntry(target) + " leaves the root"
			}
		default:
			depth++
		}
	}
	return ""
}

// maxQuoted bounds how much of a name an error shows.
const maxQuoted = 256

// quoteEntry quotes a name from an archive for a message: ASCII only,
// every other byte escaped, at most maxQuoted bytes of it.
func quoteEntry(s string) string {
	if len(s) > maxQuoted {
		return strconv.QuoteToASCII(s[:maxQuoted]) + "..."
	}
	return strconv.QuoteToASCII(s)
}

// badEntry is the error of a refused entry.
func badEntry(name, why string) error {
	q := quoteEntry(name)
	return &novacron.Error{Code: novacron.EInvalid, Message: "not a valid rootfs image: entry " + q + ": " + why,
		Details: map[string]any{"field": "format", "entry": q, "reason": why}}
}
