package transfer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"
)

// PartialSuffix names the file a receiver writes into: it stays after an
// interrupted transfer, and the next transfer to the same path resumes from
// it (its sub-blocks that match the source are not sent again).
const PartialSuffix = ".nvpart"

// Receive accepts one transfer from the sender at the other end of conn.
// A file (Send) is stored at out, replacing what was there only once its
// content is verified; a file already at out and the files in opts.Basis
// serve as sources of blocks the sender does not have to send. A tree
// (SendTree) is stored in the directory out (see receiveTree). It closes
// nothing: the caller owns conn.
func Receive(ctx context.Context, conn net.Conn, out string, opts Options) (Stats, error) {
	o := opts.withDefaults()
	start := time.Now()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	p := newPeer(ctx, conn, 0)
	var st Stats
	err := func() error {
		if err := p.handshakeReceiver(o.Token); err != nil {
			return err
		}
		t, b, err := p.recv()
		if err != nil {
			return err
		}
		if t == fDone {
			return receiveTree(p, out, t, b, &o, &st)
		}
		if t != fFile {
			return p.fail(fmt.Errorf("%w: frame %d, want a file", ErrProtocol, t))
		}
		h, err := decodeFileHeader(b)
		if err != nil {
			return p.fail(err)
		}
		if h.name != "" {
			return receiveTree(p, out, t, b, &o, &st)
		}
		if h.kind != kindFile {
			return p.fail(fmt.Errorf("%w: want a regular file", ErrProtocol))
		}
		st.BytesTotal = h.size
		st.Files = 1
		root, err := os.OpenRoot(filepath.Dir(out))
		if err != nil {
			return p.fail(fmt.Errorf("transfer: %w", err))
		}
		defer root.Close()
		name := filepath.Base(out)
		if err := receiveFile(p, root, name, h, &o, &st); err != nil {
			return err
		}
		syncDir(root)
		return nil
	}()
	st.WireSent, st.WireReceived = p.conn.w.Load(), p.conn.r.Load()
	st.Duration = time.Since(start)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("transfer: %w (%w)", ctx.Err(), err)
	}
	return st, err
}

// source is a file the receiver holds blocks of.
type source struct {
	f    *os.File
	size int64
}

// receiveFile advertises what the receiver holds, applies the sender's
// operations to out+PartialSuffix, verifies the digest and renames the result
// to out.
func receiveFile(p *peer, root *os.Root, out string, h fileHeader, o *Options, st *Stats) error {
	sub := int64(h.sub)
	partialPath := out + PartialSuffix
	var sources []source // index = src number on the wire
	defer func() {
		for _, s := range sources {
			if s.f != nil {
				s.f.Close()
			}
		}
	}()
	part, err := root.OpenFile(partialPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return p.fail(fmt.Errorf("transfer: %w", err))
	}
	defer part.Close()
	sources = append(sources, source{}) // 0: the partial file, matched in place
	partHashes, _, err := hashFile(part, h.sub)
	if err != nil {
		return p.fail(fmt.Errorf("transfer: hash %s: %w", partialPath, err))
	}
	kept := make(map[int64]hash128, len(partHashes))
	for _, e := range partHashes {
		kept[e.idx] = e.h
	}
	if err := sendHave(p, 0, partHashes); err != nil {
		return err
	}
	for i, path := range append([]string{out}, o.Basis...) {
		var f *os.File
		if i == 0 {
			f, err = root.Open(path)
		} else {
			f, err = os.Open(path)
		}
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && path == out {
				continue
			}
			return p.fail(fmt.Errorf("transfer: basis: %w", err))
		}
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			f.Close()
			if path == out {
				continue
			}
			return p.fail(fmt.Errorf("transfer: basis %s is not a regular file", path))
		}
		hs, size, err := hashFile(f, h.sub)
		if err != nil {
			f.Close()
			return p.fail(fmt.Errorf("transfer: hash %s: %w", path, err))
		}
		sources = append(sources, source{f, size})
		if err := sendHave(p, uint16(len(sources)-1), hs); err != nil {
			return err
		}
	}
	if err := p.send(fReady); err != nil {
		return err
	}
	if err := p.flush(); err != nil {
		return err
	}
	if err := part.Truncate(h.size); err != nil {
		return p.fail(fmt.Errorf("transfer: %w", err))
	}

	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(h.block)+1<<20))
	if err != nil {
		return err
	}
	defer dec.Close()
	digest := xxh3.New128()
	buf := make([]byte, h.block)
	var cur int64
	feedData := func(data []byte) {
		for a := 0; a < len(data); a += h.sub {
			b := xxh3.Hash128(data[a:min(a+h.sub, len(data))]).Bytes()
			_, _ = digest.Write(b[:])
		}
	}
	advance := func(n int64, what string) error {
		if n <= 0 || cur+n > h.size || (cur%sub != 0) {
			return fmt.Errorf("%w: %s of %d bytes at %d of %d", ErrProtocol, what, n, cur, h.size)
		}
		return nil
	}
	for {
		t, b, err := p.recv()
		if err != nil {
			return err
		}
		switch t {
		case fHole, fKeep:
			if len(b) != 8 {
				return p.fail(fmt.Errorf("%w: bad frame %d", ErrProtocol, t))
			}
			n := int64(binary.BigEndian.Uint64(b))
			if err := advance(n, "run"); err != nil {
				return p.fail(err)
			}
			if t == fHole {
				// Punch out what an earlier run left there; a fresh file is already a hole.
				for i := cur / sub; i*sub < cur+n; i++ {
					if _, ok := kept[i]; ok {
						if err := punch(part, cur, n); err != nil {
							return p.fail(err)
						}
						break
					}
				}
				feedZeros(digest, cur, n, sub)
				st.Zero += n
			} else {
				for i := cur / sub; i*sub < cur+n; i++ {
					k, ok := kept[i]
					if !ok {
						return p.fail(fmt.Errorf("%w: keep of a block the receiver does not hold", ErrProtocol))
					}
					kb := k.Bytes()
					_, _ = digest.Write(kb[:])
				}
				st.Matched += n
			}
			cur += n
		case fRef:
			if len(b) != 14 {
				return p.fail(fmt.Errorf("%w: bad ref", ErrProtocol))
			}
			src := int(binary.BigEndian.Uint16(b))
			off := int64(binary.BigEndian.Uint64(b[2:]))
			n := int64(binary.BigEndian.Uint32(b[10:]))
			if src <= 0 || src >= len(sources) || n > sub || off < 0 || off+n > sources[src].size {
				return p.fail(fmt.Errorf("%w: bad ref to source %d", ErrProtocol, src))
			}
			if err := advance(n, "ref"); err != nil {
				return p.fail(err)
			}
			if _, err := sources[src].f.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return p.fail(fmt.Errorf("transfer: read basis: %w", err))
			}
			if _, err := part.WriteAt(buf[:n], cur); err != nil {
				return p.fail(fmt.Errorf("transfer: write: %w", err))
			}
			feedData(buf[:n])
			st.Copied += n
			cur += n
		case fRaw, fZstd:
			data := b
			if t == fZstd {
				if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > h.block {
					return p.fail(fmt.Errorf("%w: bad compressed block", ErrProtocol))
				}
				data, err = dec.DecodeAll(b[4:], buf[:0])
				if err != nil {
					return p.fail(fmt.Errorf("%w: corrupt block at %d: %w", ErrVerify, cur, err))
				}
				if len(data) != int(binary.BigEndian.Uint32(b)) {
					return p.fail(fmt.Errorf("%w: block at %d has %d bytes, want %d", ErrVerify, cur, len(data), binary.BigEndian.Uint32(b)))
				}
			}
			if err := advance(int64(len(data)), "data"); err != nil {
				return p.fail(err)
			}
			if _, err := part.WriteAt(data, cur); err != nil {
				return p.fail(fmt.Errorf("transfer: write: %w", err))
			}
			feedData(data)
			st.Literal += int64(len(data))
			cur += int64(len(data))
		case fEnd:
			if cur != h.size {
				return p.fail(fmt.Errorf("%w: end at %d of %d bytes", ErrProtocol, cur, h.size))
			}
			want := b
			got := digestBytes(digest.Sum128())
			if string(want) != string(got) {
				err := fmt.Errorf("%w: content digest mismatch", ErrVerify)
				_ = p.send(fResult, append([]byte{0}, err.Error()...))
				_ = p.flush()
				return err
			}
			if err := finish(root, part, out, h); err != nil {
				_ = p.send(fResult, append([]byte{0}, err.Error()...))
				_ = p.flush()
				return err
			}
			if err := p.send(fResult, []byte{1}); err != nil {
				return err
			}
			return p.flush()
		default:
			return p.fail(fmt.Errorf("%w: unexpected frame %d", ErrProtocol, t))
		}
	}
}

// finish makes the verified partial file durable and moves it into place.
func finish(root *os.Root, part *os.File, out string, h fileHeader) error {
	if h.name != "" && os.Geteuid() == 0 {
		if err := part.Chown(int(h.uid), int(h.gid)); err != nil {
			return fmt.Errorf("transfer: %w", err)
		}
	}
	if err := part.Chmod(fileMode(h.mode)); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	if err := part.Sync(); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	if err := root.Rename(out+PartialSuffix, out); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	if h.name != "" {
		mt := time.Unix(0, h.mtimeNs)
		if err := root.Chtimes(out, mt, mt); err != nil {
			return fmt.Errorf("transfer: %w", err)
		}
	}
	return nil
}

// fileMode turns the wire's permission bits (with setuid, setgid and sticky
// as in stat(2)) into an os.FileMode.
func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// wireMode is the inverse of fileMode.
func wireMode(fm os.FileMode) uint32 {
	m := uint32(fm.Perm())
	if fm&os.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if fm&os.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if fm&os.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

func syncDir(root *os.Root) {
	if d, err := root.Open("."); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// punch turns [off, off+n) of f into a hole, or writes zeros where the file
// system cannot.
func punch(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	for n > 0 {
		c := min(n, int64(len(zeroBuf)))
		if _, err := f.WriteAt(zeroBuf[:c], off); err != nil {
			return fmt.Errorf("transfer: zero: %w", err)
		}
		off += c
		n -= c
	}
	return nil
}

// sendHave advertises the hashes of one source in frames of bounded size.
func sendHave(p *peer, src uint16, hs []subHash) error {
	const per = 64 << 10
	for len(hs) > 0 {
		n := min(len(hs), per)
		b := make([]byte, 2, 2+24*n)
		binary.BigEndian.PutUint16(b, src)
		for _, e := range hs[:n] {
			b = binary.BigEndian.AppendUint64(b, uint64(e.idx))
			b = binary.BigEndian.AppendUint64(b, e.h.Hi)
			b = binary.BigEndian.AppendUint64(b, e.h.Lo)
		}
		if err := p.send(fHave, b); err != nil {
			return err
		}
		hs = hs[n:]
	}
	return nil
}
