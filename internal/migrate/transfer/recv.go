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
	fw := &fileWriter{part: part, size: h.size, sub: sub, kept: kept, sources: sources,
		digest: xxh3.New128(), buf: make([]byte, h.block), st: st}
	lit := make([]byte, h.block)
	for {
		t, b, err := p.recv()
		if err != nil {
			return err
		}
		switch t {
		case fHole:
			if len(b) != 8 {
				return p.fail(fmt.Errorf("%w: bad hole", ErrProtocol))
			}
			if err := fw.zero(int64(binary.BigEndian.Uint64(b))); err != nil {
				return p.fail(err)
			}
		case fBlock:
			if err := fw.block(b, dec, lit, h.block); err != nil {
				return p.fail(err)
			}
		case fEnd:
			cur := fw.cur
			digest := fw.digest
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

// fileWriter applies a sender's operations to the partial file, in order,
// and folds the digest of what it writes.
type fileWriter struct {
	part    *os.File
	size    int64
	sub     int64
	kept    map[int64]hash128
	sources []source
	digest  *xxh3.Hasher128
	buf     []byte
	st      *Stats
	cur     int64
	// started is the offset up to which writeback was started, waited the
	// offset up to which it is done.
	started, waited int64
}

// writebackChunk is how much written data the receiver lets accumulate
// before it starts writing it back. It waits for the chunk before, so that
// at most two chunks are ever dirty and the final fsync is short.
const writebackChunk = 8 << 20

// check refuses an operation of n bytes that does not fit the file or does
// not start on a sub-block boundary.
func (w *fileWriter) check(n int64, what string) error {
	if n <= 0 || w.cur+n > w.size || w.cur%w.sub != 0 {
		return fmt.Errorf("%w: %s of %d bytes at %d of %d", ErrProtocol, what, n, w.cur, w.size)
	}
	return nil
}

// zero makes the next n bytes a hole.
func (w *fileWriter) zero(n int64) error {
	if err := w.check(n, "hole"); err != nil {
		return err
	}
	// Punch out what an earlier run left there; a fresh file is already a hole.
	for i := w.cur / w.sub; i*w.sub < w.cur+n; i++ {
		if _, ok := w.kept[i]; ok {
			if err := punch(w.part, w.cur, n); err != nil {
				return err
			}
			break
		}
	}
	feedZeros(w.digest, w.cur, n, w.sub)
	w.st.Zero += n
	w.cur += n
	return nil
}

// keep accepts the next n bytes as the partial file holds them.
func (w *fileWriter) keep(n int64) error {
	if err := w.check(n, "keep"); err != nil {
		return err
	}
	for i := w.cur / w.sub; i*w.sub < w.cur+n; i++ {
		k, ok := w.kept[i]
		if !ok {
			return fmt.Errorf("%w: keep of a block the receiver does not hold", ErrProtocol)
		}
		kb := k.Bytes()
		_, _ = w.digest.Write(kb[:])
	}
	w.st.Matched += n
	w.cur += n
	return nil
}

// ref copies the next n bytes from a source.
func (w *fileWriter) ref(src int, off, n int64) error {
	if err := w.check(n, "ref"); err != nil {
		return err
	}
	if src <= 0 || src >= len(w.sources) || off < 0 || off%w.sub != 0 || off+n > w.sources[src].size {
		return fmt.Errorf("%w: bad ref to source %d", ErrProtocol, src)
	}
	for n > 0 {
		c := min(n, int64(len(w.buf)))
		if _, err := w.sources[src].f.ReadAt(w.buf[:c], off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("transfer: read basis: %w", err)
		}
		if err := w.write(w.buf[:c]); err != nil {
			return err
		}
		w.st.Copied += c
		off += c
		n -= c
	}
	return nil
}

// literal writes data as the next bytes.
func (w *fileWriter) literal(data []byte) error {
	if err := w.check(int64(len(data)), "data"); err != nil {
		return err
	}
	w.st.Literal += int64(len(data))
	return w.write(data)
}

func (w *fileWriter) write(data []byte) error {
	if _, err := w.part.WriteAt(data, w.cur); err != nil {
		return fmt.Errorf("transfer: write: %w", err)
	}
	for a := 0; a < len(data); a += int(w.sub) {
		b := xxh3.Hash128(data[a:min(a+int(w.sub), len(data))]).Bytes()
		_, _ = w.digest.Write(b[:])
	}
	w.cur += int64(len(data))
	if w.cur-w.started >= writebackChunk {
		fd := int(w.part.Fd())
		_ = unix.SyncFileRange(fd, w.started, w.cur-w.started, unix.SYNC_FILE_RANGE_WRITE)
		if w.started > w.waited {
			_ = unix.SyncFileRange(fd, w.waited, w.started-w.waited,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		}
		w.waited, w.started = w.started, w.cur
	}
	return nil
}

// block applies one fBlock frame.
func (w *fileWriter) block(b []byte, dec *zstd.Decoder, lit []byte, blockSize int) error {
	bad := func(what string) error { return fmt.Errorf("%w: bad block frame: %s", ErrProtocol, what) }
	nops, k := binary.Uvarint(b)
	if k <= 0 || nops > uint64(blockSize) {
		return bad("operation count")
	}
	b = b[k:]
	type op struct {
		kind   byte
		src    uint64
		off, n uint64
	}
	ops := make([]op, 0, nops)
	var total, litTotal uint64
	for range nops {
		if len(b) == 0 {
			return bad("short")
		}
		o := op{kind: b[0]}
		b = b[1:]
		fields := []*uint64{&o.n}
		switch o.kind {
		case opLiteral, opZero, opKeep:
		case opRef:
			fields = []*uint64{&o.src, &o.off, &o.n}
		default:
			return bad("unknown operation")
		}
		for _, f := range fields {
			v, k := binary.Uvarint(b)
			if k <= 0 {
				return bad("short")
			}
			*f, b = v, b[k:]
		}
		if o.n == 0 || o.n > uint64(blockSize) || o.src > 1<<16 || o.off > 1<<62 {
			return bad("operation out of range")
		}
		total += o.n
		if o.kind == opLiteral {
			litTotal += o.n
		}
		ops = append(ops, o)
	}
	if total > uint64(blockSize) || len(b) < 1 {
		return bad("too long")
	}
	flags := b[0]
	rawLen, k := binary.Uvarint(b[1:])
	if k <= 0 || rawLen != litTotal || flags > 1 {
		return bad("literal length")
	}
	payload := b[1+k:]
	data := payload
	if flags == 1 {
		var err error
		data, err = dec.DecodeAll(payload, lit[:0])
		if err != nil {
			return fmt.Errorf("%w: corrupt block at %d: %w", ErrVerify, w.cur, err)
		}
	}
	if uint64(len(data)) != rawLen {
		return fmt.Errorf("%w: block at %d has %d literal bytes, want %d", ErrVerify, w.cur, len(data), rawLen)
	}
	for _, o := range ops {
		var err error
		switch o.kind {
		case opLiteral:
			err = w.literal(data[:o.n])
			data = data[o.n:]
		case opZero:
			err = w.zero(int64(o.n))
		case opKeep:
			err = w.keep(int64(o.n))
		case opRef:
			err = w.ref(int(o.src), int64(o.off), int64(o.n))
		}
		if err != nil {
			return err
		}
	}
	return nil
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

// sendHave advertises the hashes of one source. A frame holds the source
// number, then runs of consecutive sub-blocks: the gap (in sub-blocks) from
// the end of the previous run, the count, and count hashes (the low 64 bits
// of each xxh3-128).
func sendHave(p *peer, src uint16, hs []subHash) error {
	const maxHave = 1 << 20
	b := binary.BigEndian.AppendUint16(make([]byte, 0, maxHave+64), src)
	next := int64(0)
	for len(hs) > 0 {
		n := 1
		for n < len(hs) && hs[n].idx == hs[0].idx+int64(n) && 8*n < maxHave {
			n++
		}
		b = binary.AppendUvarint(b, uint64(hs[0].idx-next))
		b = binary.AppendUvarint(b, uint64(n))
		for _, e := range hs[:n] {
			b = binary.BigEndian.AppendUint64(b, e.h.Lo)
		}
		next = hs[0].idx + int64(n)
		hs = hs[n:]
		if len(b) >= maxHave || len(hs) == 0 {
			if err := p.send(fHave, b); err != nil {
				return err
			}
			b, next = binary.BigEndian.AppendUint16(b[:0], src), 0
		}
	}
	return nil
}
