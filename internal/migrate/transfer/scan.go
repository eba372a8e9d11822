package transfer

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"
)

// hash128 is the identity of a sub-block's content.
type hash128 = xxh3.Uint128

// extent is a range [off, off+n) of a file.
type extent struct{ off, n int64 }

// dataExtents returns the ranges of f that may hold data, widened to multiples
// of align (and clipped to size), found with SEEK_DATA/SEEK_HOLE so holes are
// never read. A file system without SEEK_DATA yields the whole file.
func dataExtents(f *os.File, size, align int64) ([]extent, error) {
	if size == 0 {
		return nil, nil
	}
	fd := int(f.Fd())
	var out []extent
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return []extent{{0, size}}, nil
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return []extent{{0, size}}, nil
		}
		end = min(end, size)
		if end <= start {
			break
		}
		a := start / align * align
		b := min((end+align-1)/align*align, size)
		if n := len(out); n > 0 && out[n-1].off+out[n-1].n >= a {
			out[n-1].n = max(out[n-1].off+out[n-1].n, b) - out[n-1].off
		} else {
			out = append(out, extent{a, b - a})
		}
		off = end
	}
	return out, nil
}

var (
	zeroBuf       = make([]byte, 4<<20)
	zeroHashMu    sync.Mutex
	zeroHashCache = map[int]hash128{}
)

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBuf))
		if !bytes.Equal(b[:n], zeroBuf[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// zeroHash is the hash of n zero bytes.
func zeroHash(n int) hash128 {
	zeroHashMu.Lock()
	defer zeroHashMu.Unlock()
	h, ok := zeroHashCache[n]
	if !ok {
		h = xxh3.Hash128(make([]byte, n))
		zeroHashCache[n] = h
	}
	return h
}

// subHash is one sub-block a receiver holds.
type subHash struct {
	idx int64 // offset / sub-block size
	h   hash128
}

// hashFile returns the hashes of the non-zero sub-blocks of the file at path
// (holes are skipped without reading).
func hashFile(f *os.File, sub int) ([]subHash, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	exts, err := dataExtents(f, size, int64(sub))
	if err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 16*sub)
	var out []subHash
	for _, e := range exts {
		for off := e.off; off < e.off+e.n; {
			n := int(min(int64(len(buf)), e.off+e.n-off))
			if _, err := f.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return nil, 0, err
			}
			for a := 0; a < n; a += sub {
				s := buf[a:min(a+sub, n)]
				if isZero(s) {
					continue
				}
				out = append(out, subHash{(off + int64(a)) / int64(sub), xxh3.Hash128(s)})
			}
			off += int64(n)
		}
	}
	return out, size, nil
}

// subBlockSize returns the sub-block size for a file of the given size:
// o.SubBlockSize when set, else MinSubBlockSize doubled until the file's
// data (holes excluded) has at most MaxSubBlocks sub-blocks.
func subBlockSize(o *Options, f *os.File, size int64) (int, error) {
	if o.SubBlockSize > 0 {
		return o.SubBlockSize, nil
	}
	exts, err := dataExtents(f, size, MinSubBlockSize)
	if err != nil {
		return 0, err
	}
	var data int64
	for _, e := range exts {
		data += e.n
	}
	return subBlockFor(data, o.BlockSize), nil
}

// subBlockFor is the default sub-block size for data bytes in blocks of
// the given size.
func subBlockFor(data int64, block int) int {
	sub := MinSubBlockSize
	for sub < block && (data+int64(sub)-1)/int64(sub) > MaxSubBlocks {
		sub *= 2
	}
	if sub > block || block%sub != 0 {
		sub = block
	}
	return sub
}
