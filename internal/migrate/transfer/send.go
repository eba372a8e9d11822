package transfer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"
)

// Send moves the regular file at path to the receiver at the other end of
// conn and returns once the receiver has verified and stored it. It closes
// nothing: the caller owns conn.
func Send(ctx context.Context, conn net.Conn, path string, opts Options) (Stats, error) {
	o := opts.withDefaults()
	if o.SubBlockSize > 0 && o.BlockSize%o.SubBlockSize != 0 {
		return Stats{}, fmt.Errorf("transfer: block size %d is not a multiple of sub-block size %d", o.BlockSize, o.SubBlockSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Stats{}, fmt.Errorf("transfer: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Stats{}, fmt.Errorf("transfer: %s is not a regular file (use SendTree for a directory)", path)
	}
	if o.SubBlockSize, err = subBlockSize(&o, f, fi.Size()); err != nil {
		return Stats{}, fmt.Errorf("transfer: %w", err)
	}
	start := time.Now()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	p := newPeer(ctx, conn, o.BandwidthLimit)
	var st Stats
	err = func() error {
		if err := p.handshakeSender(o.Token); err != nil {
			return err
		}
		if err := p.send(fFile, fileHeader{size: fi.Size(), mode: wireMode(fi.Mode()), block: o.BlockSize, sub: o.SubBlockSize}.encode()); err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
		if err := sendFile(ctx, p, f, fi.Size(), &o, &st, start); err != nil {
			return err
		}
		return nil
	}()
	st.BytesTotal = fi.Size()
	st.Files = 1
	st.WireSent, st.WireReceived = p.conn.w.Load(), p.conn.r.Load()
	st.Duration = time.Since(start)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("transfer: %w (%w)", ctx.Err(), err)
	}
	return st, err
}

// fileHeader describes one file to the receiver.
type fileHeader struct {
	size       int64
	mode       uint32
	block, sub int
	name       string // tree mode: slash-separated path relative to the root
	uid, gid   uint32
	mtimeNs    int64
	kind       byte // 0 regular file (tree mode adds others)
	link       string
	linkTarget string // tree mode: hard link to an earlier entry
}

func (h fileHeader) encode() []byte {
	b := make([]byte, 0, 64+len(h.name)+len(h.link)+len(h.linkTarget))
	b = append(b, h.kind)
	b = binary.BigEndian.AppendUint64(b, uint64(h.size))
	b = binary.BigEndian.AppendUint32(b, h.mode)
	b = binary.BigEndian.AppendUint32(b, uint32(h.block))
	b = binary.BigEndian.AppendUint32(b, uint32(h.sub))
	b = binary.BigEndian.AppendUint32(b, h.uid)
	b = binary.BigEndian.AppendUint32(b, h.gid)
	b = binary.BigEndian.AppendUint64(b, uint64(h.mtimeNs))
	for _, s := range []string{h.name, h.link, h.linkTarget} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeFileHeader(b []byte) (fileHeader, error) {
	var h fileHeader
	bad := fmt.Errorf("%w: bad file header", ErrProtocol)
	if len(b) < 37 {
		return h, bad
	}
	h.kind = b[0]
	h.size = int64(binary.BigEndian.Uint64(b[1:]))
	h.mode = binary.BigEndian.Uint32(b[9:])
	h.block = int(binary.BigEndian.Uint32(b[13:]))
	h.sub = int(binary.BigEndian.Uint32(b[17:]))
	h.uid = binary.BigEndian.Uint32(b[21:])
	h.gid = binary.BigEndian.Uint32(b[25:])
	h.mtimeNs = int64(binary.BigEndian.Uint64(b[29:]))
	b = b[37:]
	var ss [3]string
	for i := range ss {
		if len(b) < 4 {
			return h, bad
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			return h, bad
		}
		ss[i] = string(b[4 : 4+n])
		b = b[4+n:]
	}
	h.name, h.link, h.linkTarget = ss[0], ss[1], ss[2]
	if h.size < 0 || (h.kind == 0 && (h.sub <= 0 || h.block <= 0 || h.block%h.sub != 0 || h.block > 16<<20)) {
		return h, bad
	}
	return h, nil
}

// ref is where the receiver holds a sub-block.
type ref struct {
	src uint16
	off int64
}

// job is one piece of the source in the sender's pipeline.
type job struct {
	seq  int
	off  int64
	n    int64
	hole bool
	buf  []byte
}

// result is a job's encoded frames and the hashes of its sub-blocks.
type result struct {
	job
	frames  []byte
	hashes  []hash128
	literal int64
	matched int64
	copied  int64
	zero    int64
}

// sendFile runs the pipeline for one file after its header was sent: it
// reads the receiver's hashes, streams the operations and waits for the
// verdict.
func sendFile(ctx context.Context, p *peer, f *os.File, size int64, o *Options, st *Stats, start time.Time) error {
	sub := int64(o.SubBlockSize)
	keep := map[int64]uint64{}
	refs := map[uint64]ref{}
	for {
		t, b, err := p.recv()
		if err != nil {
			return err
		}
		if t == fReady {
			break
		}
		if err := readHave(b, t, keep, refs, sub); err != nil {
			return err
		}
	}

	exts, err := dataExtents(f, size, sub)
	if err != nil {
		return err
	}
	for _, e := range exts {
		st.BytesData += e.n
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctl := newLevelCtl(o.Level)
	inflight := make(chan struct{}, 2*workers+2)
	jobs := make(chan job, workers)
	results := make(chan result, 2*workers+2)
	bufPool := sync.Pool{New: func() any { b := make([]byte, o.BlockSize); return &b }}

	g, gctx := errgroup.WithContext(ctx)
	// Scanner: cuts the file into hole runs and data blocks, in order.
	g.Go(func() error {
		defer close(jobs)
		seq := 0
		emit := func(j job) error {
			select {
			case inflight <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			j.seq = seq
			seq++
			if j.hole {
				select {
				case results <- result{job: j, zero: j.n}:
				case <-gctx.Done():
					return gctx.Err()
				}
				return nil
			}
			buf := *bufPool.Get().(*[]byte)
			if _, err := f.ReadAt(buf[:j.n], j.off); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("transfer: read: %w", err)
			}
			j.buf = buf[:j.n]
			select {
			case jobs <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			return nil
		}
		pos := int64(0)
		bs := int64(o.BlockSize)
		for _, e := range append(exts, extent{size, 0}) {
			if e.off > pos {
				if err := emit(job{off: pos, n: e.off - pos, hole: true}); err != nil {
					return err
				}
			}
			for off := e.off; off < e.off+e.n; {
				n := min(bs-off%bs, e.off+e.n-off)
				if err := emit(job{off: off, n: n}); err != nil {
					return err
				}
				off += n
			}
			pos = e.off + e.n
		}
		return nil
	})
	// Workers: classify, hash and compress.
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			w := worker{o: o, ctl: ctl, keep: keep, refs: refs}
			defer w.close()
			for j := range jobs {
				r := w.do(j)
				b := j.buf[:cap(j.buf)]
				bufPool.Put(&b)
				select {
				case results <- r:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	// Writer: puts results back in order, writes them and folds the digest.
	digest := xxh3.New128()
	g.Go(func() error {
		pending := map[int]result{}
		next := 0
		var scanned int64
		lastProgress := time.Time{}
		progress := func(done bool) {
			if o.Progress == nil || (!done && time.Since(lastProgress) < o.ProgressInterval) {
				return
			}
			lastProgress = time.Now()
			el := time.Since(start).Seconds()
			pr := Progress{Total: size, Scanned: scanned, Wire: p.conn.r.Load() + p.conn.w.Load(), Done: done}
			if el > 0 {
				pr.Rate = float64(scanned) / el
			}
			if pr.Rate > 0 && !done {
				pr.ETA = time.Duration(float64(size-scanned) / pr.Rate * float64(time.Second))
			}
			o.Progress(pr)
		}
		waitStart := time.Now()
		for scanned < size || len(pending) > 0 {
			var r result
			select {
			case r = <-results:
			case <-gctx.Done():
				return gctx.Err()
			}
			pending[r.seq] = r
			for {
				r, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				t0 := time.Now()
				if r.hole {
					if err := p.send(fHole, binary.BigEndian.AppendUint64(nil, uint64(r.n))); err != nil {
						return err
					}
					feedZeros(digest, r.off, r.n, sub)
				} else {
					if _, err := p.bw.Write(r.frames); err != nil {
						return err
					}
					for _, h := range r.hashes {
						b := h.Bytes()
						_, _ = digest.Write(b[:])
					}
					ctl.observe(r.n, int64(len(r.frames)), t0.Sub(waitStart), time.Since(t0))
				}
				waitStart = time.Now()
				scanned += r.n
				st.Literal += r.literal
				st.Matched += r.matched
				st.Copied += r.copied
				st.Zero += r.zero
				<-inflight
				progress(false)
			}
		}
		if err := p.send(fEnd, digestBytes(digest.Sum128())); err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
		b, err := p.expect(fResult)
		if err != nil {
			return err
		}
		progress(true)
		if len(b) < 1 || b[0] != 1 {
			return fmt.Errorf("%w: receiver: %s", ErrVerify, b[min(1, len(b)):])
		}
		return nil
	})
	return g.Wait()
}

// readHave reads one frame of the receiver's hashes into keep (source 0,
// matched in place) or refs (other sources, matched anywhere).
func readHave(b []byte, t byte, keep map[int64]uint64, refs map[uint64]ref, sub int64) error {
	bad := fmt.Errorf("%w: frame %d while reading hashes", ErrProtocol, t)
	if t != fHave || len(b) < 2 {
		return bad
	}
	src := binary.BigEndian.Uint16(b)
	b = b[2:]
	idx := int64(0)
	for len(b) > 0 {
		gap, k := binary.Uvarint(b)
		if k <= 0 || gap > 1<<48 {
			return bad
		}
		b = b[k:]
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > uint64(len(b)-k)/8 {
			return bad
		}
		b = b[k:]
		idx += int64(gap)
		for range n {
			h := binary.BigEndian.Uint64(b)
			if src == 0 {
				keep[idx] = h
			} else if _, ok := refs[h]; !ok {
				refs[h] = ref{src, idx * sub}
			}
			b, idx = b[8:], idx+1
		}
	}
	return nil
}

func digestBytes(h hash128) []byte {
	b := h.Bytes()
	return b[:]
}

// feedZeros folds the hashes of the zero sub-blocks of [off, off+n) into d.
func feedZeros(d *xxh3.Hasher128, off, n, sub int64) {
	for a := off; a < off+n; {
		l := min(sub-a%sub, off+n-a)
		b := zeroHash(int(l)).Bytes()
		_, _ = d.Write(b[:])
		a += l
	}
}

// worker holds one goroutine's compressors.
type worker struct {
	o       *Options
	ctl     *levelCtl
	keep    map[int64]uint64
	refs    map[uint64]ref
	enc     [5]*zstd.Encoder
	n       int
	incomp  int
	scratch []byte
	litBuf  []byte
	sample  []byte
	plan    blockPlan
}

func (w *worker) close() {
	for _, e := range w.enc {
		if e != nil {
			_ = e.Close()
		}
	}
}

func (w *worker) encoder(level int) *zstd.Encoder {
	if w.enc[level] == nil {
		zl := [5]zstd.EncoderLevel{1: zstd.SpeedFastest, 2: zstd.SpeedDefault, 3: zstd.SpeedBetterCompression, 4: zstd.SpeedBestCompression}[level]
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zl), zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false), zstd.WithWindowSize(max(1<<20, zstd.MinWindowSize)))
		if err != nil {
			panic(err) // only for invalid options
		}
		w.enc[level] = e
	}
	return w.enc[level]
}

// Operations of a block frame (fBlock): each covers the next len bytes of
// the file.
const (
	opLiteral byte = 1 // len: the next len bytes of the frame's payload
	opZero    byte = 2 // len: zeros (a hole)
	opKeep    byte = 3 // len: the receiver's partial file already holds them in place
	opRef     byte = 4 // src, off, len: copy from a receiver's source
)

// blockPlan builds one block's frame: the operations and the literal bytes.
type blockPlan struct {
	ops  []byte
	nops int
	// kind, src, off and n of the operation being extended.
	kind   byte
	src    uint16
	off, n int64
	// lits are the literal runs, [start, end) in the block.
	lits [][2]int
}

func (b *blockPlan) reset() {
	b.ops, b.nops, b.kind, b.n, b.lits = b.ops[:0], 0, 0, 0, b.lits[:0]
}

// add extends the plan by n bytes at position pos of the block.
func (b *blockPlan) add(kind byte, src uint16, off int64, pos, n int) {
	if kind == b.kind && (kind != opRef || (src == b.src && off == b.off+b.n)) {
		b.n += int64(n)
		if kind == opLiteral {
			b.lits[len(b.lits)-1][1] = pos + n
		}
		return
	}
	b.flush()
	b.kind, b.src, b.off, b.n = kind, src, off, int64(n)
	if kind == opLiteral {
		b.lits = append(b.lits, [2]int{pos, pos + n})
	}
}

func (b *blockPlan) flush() {
	if b.kind == 0 {
		return
	}
	b.ops = append(b.ops, b.kind)
	if b.kind == opRef {
		b.ops = binary.AppendUvarint(b.ops, uint64(b.src))
		b.ops = binary.AppendUvarint(b.ops, uint64(b.off))
	}
	b.ops = binary.AppendUvarint(b.ops, uint64(b.n))
	b.nops++
	b.kind = 0
}

// do classifies every sub-block of the job (zero, held in place by the
// receiver, held elsewhere by the receiver, or literal) and encodes the block
// as one frame: its operations, then its literal bytes compressed together.
func (w *worker) do(j job) result {
	w.n++
	sub := int64(w.o.SubBlockSize)
	r := result{job: j}
	p := &w.plan
	p.reset()
	for a := 0; a < len(j.buf); a += int(sub) {
		s := j.buf[a:min(a+int(sub), len(j.buf))]
		idx := (j.off + int64(a)) / sub
		var h hash128
		switch {
		case isZero(s):
			h = zeroHash(len(s))
			p.add(opZero, 0, 0, a, len(s))
			r.zero += int64(len(s))
		default:
			h = xxh3.Hash128(s)
			if k, ok := w.keep[idx]; ok && k == h.Lo {
				p.add(opKeep, 0, 0, a, len(s))
				r.matched += int64(len(s))
			} else if x, ok := w.refs[h.Lo]; ok {
				p.add(opRef, x.src, x.off, a, len(s))
				r.copied += int64(len(s))
			} else {
				p.add(opLiteral, 0, 0, a, len(s))
				r.literal += int64(len(s))
			}
		}
		r.hashes = append(r.hashes, h)
	}
	p.flush()
	// The literal bytes, contiguous in the block when there is one run.
	var lit []byte
	switch len(p.lits) {
	case 0:
	case 1:
		lit = j.buf[p.lits[0][0]:p.lits[0][1]]
	default:
		w.litBuf = w.litBuf[:0]
		for _, l := range p.lits {
			w.litBuf = append(w.litBuf, j.buf[l[0]:l[1]]...)
		}
		lit = w.litBuf
	}
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, uint64(p.nops))
	hdr = append(hdr, p.ops...)
	payload, compressed := w.compress(lit)
	flags := byte(0)
	if compressed {
		flags = 1
	}
	hdr = append(hdr, flags)
	hdr = binary.AppendUvarint(hdr, uint64(len(lit)))
	r.frames = appendFrame(make([]byte, 0, 5+len(hdr)+len(payload)), fBlock, hdr, payload)
	return r
}

// compressSample is how much of a block is tried when recent blocks did not
// compress.
const compressSample = 32 << 10

// pays reports whether compressing n bytes into c is worth it.
func pays(n, c int) bool { return c < n-n/32 }

// compress returns data zstd-compressed at the controller's level, or data
// itself when compression is off or does not pay.
func (w *worker) compress(data []byte) ([]byte, bool) {
	if len(data) == 0 {
		return nil, false
	}
	level := w.ctl.level()
	if level == 0 {
		return data, false
	}
	if w.incomp >= 2 && len(data) > 4*compressSample {
		// Recent blocks did not compress: try a sample of this one first,
		// four pieces spread over it.
		w.sample = w.sample[:0]
		for i := range 4 {
			at := i * (len(data) - compressSample/4) / 3
			w.sample = append(w.sample, data[at:at+compressSample/4]...)
		}
		w.scratch = w.encoder(1).EncodeAll(w.sample, w.scratch[:0])
		if !pays(len(w.sample), len(w.scratch)) {
			return data, false
		}
	}
	w.scratch = w.encoder(level).EncodeAll(data, w.scratch[:0])
	if pays(len(data), len(w.scratch)) {
		w.incomp = 0
		return w.scratch, true
	}
	w.incomp++
	return data, false
}

func appendFrame(dst []byte, typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}
