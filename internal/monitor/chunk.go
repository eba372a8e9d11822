package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A chunk is a stretch of one resource's samples at one resolution, kept
// as one database row. Its encoding is columnar:
//
//	format byte (formatRaw or formatZstd), then, zstd-compressed or not:
//	uvarint count, uvarint columns,
//	timestamps in milliseconds: the first as a varint, then the first
//	delta, then deltas of deltas (zigzag varints; samples taken at a
//	steady interval cost a zero byte each before compression),
//	per column: a presence byte (all nil, all present, or a bitmap of
//	count bits follows), then the present values as integers (the value
//	times the column's scale, rounded), the first as a varint, then
//	deltas.
//
// Values are kept at the precision of their column's scale: 0.01 for
// percentages and load averages, 1 byte/s for network rates, 0.1 for iops.

// series is the decoded content of a chunk: timestamps in milliseconds and
// one slice per column, nil where a value was not measured.
type series struct {
	ts   []int64
	cols [][]*float64
}

func (s *series) Len() int { return len(s.ts) }

const (
	formatRaw  = 1
	formatZstd = 2

	presentNone   = 0
	presentAll    = 1
	presentBitmap = 2

	// maxChunkSamples bounds what a decoder accepts.
	maxChunkSamples = 1 << 20
	maxColumns      = 64
)

// maxValue bounds a stored value: far above any byte count or rate a host
// has, far below what a scaled int64 holds.
const maxValue = 1e15

var (
	zenc *zstd.Encoder
	zdec *zstd.Decoder
	zmu  sync.Once
)

func codecs() (*zstd.Encoder, *zstd.Decoder) {
	zmu.Do(func() {
		var err error
		zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(err)
		}
		zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			panic(err)
		}
	})
	return zenc, zdec
}

// encodeSeries encodes s, whose timestamps must be increasing, with one
// scale per column.
func encodeSeries(s *series, scales []float64) ([]byte, error) {
	if len(s.cols) != len(scales) {
		return nil, fmt.Errorf("chunk: %d columns, %d scales", len(s.cols), len(scales))
	}
	n := len(s.ts)
	b := make([]byte, 0, 16+n*(2+3*len(scales)))
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64(len(s.cols)))
	var prev, prevDelta int64
	for i, t := range s.ts {
		switch i {
		case 0:
			b = binary.AppendVarint(b, t)
		case 1:
			prevDelta = t - prev
			if prevDelta <= 0 {
				return nil, errors.New("chunk: timestamps not increasing")
			}
			b = binary.AppendVarint(b, prevDelta)
		default:
			d := t - prev
			if d <= 0 {
				return nil, errors.New("chunk: timestamps not increasing")
			}
			b = binary.AppendVarint(b, d-prevDelta)
			prevDelta = d
		}
		prev = t
	}
	for c, col := range s.cols {
		if len(col) != n {
			return nil, fmt.Errorf("chunk: column %d has %d values for %d timestamps", c, len(col), n)
		}
		present := 0
		for _, v := range col {
			if v != nil {
				present++
			}
		}
		switch present {
		case 0:
			b = append(b, presentNone)
			continue
		case n:
			b = append(b, presentAll)
		default:
			b = append(b, presentBitmap)
			bm := make([]byte, (n+7)/8)
			for i, v := range col {
				if v != nil {
					bm[i/8] |= 1 << (i % 8)
				}
			}
			b = append(b, bm...)
		}
		var prevV int64
		first := true
		for _, v := range col {
			if v == nil {
				continue
			}
			if math.IsNaN(*v) || math.IsInf(*v, 0) || math.Abs(*v) > maxValue {
				return nil, fmt.Errorf("chunk: value %v out of range", *v)
			}
			q := int64(math.Round(*v * scales[c]))
			if first {
				b = binary.AppendVarint(b, q)
				first = false
			} else {
				b = binary.AppendVarint(b, q-prevV)
			}
			prevV = q
		}
	}
	enc, _ := codecs()
	z := enc.EncodeAll(b, make([]byte, 1, len(b)/2+16))
	if len(z)-1 < len(b) {
		z[0] = formatZstd
		return z, nil
	}
	return append([]byte{formatRaw}, b...), nil
}

// decodeSeries decodes a chunk with the given scales.
func decodeSeries(data []byte, scales []float64) (*series, error) {
	if len(data) == 0 {
		return nil, errors.New("chunk: empty")
	}
	var b []byte
	switch data[0] {
	case formatRaw:
		b = data[1:]
	case formatZstd:
		_, dec := codecs()
		var err error
		if b, err = dec.DecodeAll(data[1:], nil); err != nil {
			return nil, fmt.Errorf("chunk: %w", err)
		}
	default:
		return nil, fmt.Errorf("chunk: unknown format %d", data[0])
	}
	r := reader{b: b}
	n := r.uvarint()
	nc := r.uvarint()
	if r.err != nil || n > maxChunkSamples || nc > maxColumns {
		return nil, errors.New("chunk: bad header")
	}
	if int(nc) != len(scales) {
		return nil, fmt.Errorf("chunk: %d columns, want %d", nc, len(scales))
	}
	s := &series{ts: make([]int64, n), cols: make([][]*float64, nc)}
	var prev, delta int64
	for i := range s.ts {
		switch i {
		case 0:
			prev = r.varint()
		case 1:
			delta = r.varint()
			prev += delta
		default:
			delta += r.varint()
			prev += delta
		}
		s.ts[i] = prev
	}
	for c := range s.cols {
		col := make([]*float64, n)
		s.cols[c] = col
		mode := r.byte()
		var bm []byte
		switch mode {
		case presentNone:
			continue
		case presentAll:
		case presentBitmap:
			bm = r.bytes((int(n) + 7) / 8)
		default:
			return nil, errors.New("chunk: bad presence")
		}
		vals := make([]float64, 0, n)
		var q int64
		first := true
		for i := range col {
			if bm != nil && bm[i/8]&(1<<(i%8)) == 0 {
				continue
			}
			if first {
				q = r.varint()
				first = false
			} else {
				q += r.varint()
			}
			vals = append(vals, float64(q)/scales[c])
			col[i] = &vals[len(vals)-1]
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, errors.New("chunk: trailing bytes")
	}
	return s, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("chunk: truncated")
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n int) []byte {
	if len(r.b) < n {
		r.fail()
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// merge returns the samples of a and b in time order; where both hold a
// timestamp, b's sample wins.
func merge(a, b *series) *series {
	if a == nil || a.Len() == 0 {
		return b
	}
	if b == nil || b.Len() == 0 {
		return a
	}
	if a.ts[len(a.ts)-1] < b.ts[0] {
		// The usual case: new samples after the old ones.
		out := &series{ts: append(a.ts[:len(a.ts):len(a.ts)], b.ts...), cols: make([][]*float64, len(a.cols))}
		for c := range a.cols {
			out.cols[c] = append(a.cols[c][:len(a.cols[c]):len(a.cols[c])], b.cols[c]...)
		}
		return out
	}
	type row struct {
		src *series
		i   int
	}
	byTS := make(map[int64]row, a.Len()+b.Len())
	for i, t := range a.ts {
		byTS[t] = row{a, i}
	}
	for i, t := range b.ts {
		byTS[t] = row{b, i}
	}
	keys := make([]int64, 0, len(byTS))
	for t := range byTS {
		keys = append(keys, t)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	out := &series{ts: keys, cols: make([][]*float64, len(a.cols))}
	for c := range out.cols {
		out.cols[c] = make([]*float64, len(keys))
	}
	for i, t := range keys {
		r := byTS[t]
		for c := range out.cols {
			out.cols[c][i] = r.src.cols[c][r.i]
		}
	}
	return out
}

// slice returns the samples of s with from <= ts < to (milliseconds).
func (s *series) slice(from, to int64) *series {
	lo := sort.Search(len(s.ts), func(i int) bool { return s.ts[i] >= from })
	hi := sort.Search(len(s.ts), func(i int) bool { return s.ts[i] >= to })
	out := &series{ts: s.ts[lo:hi], cols: make([][]*float64, len(s.cols))}
	for c := range s.cols {
		out.cols[c] = s.cols[c][lo:hi]
	}
	return out
}
