package monitor

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func f(v float64) *float64 { return &v }

func equalSeries(t *testing.T, got, want *series, tol []float64) {
	t.Helper()
	if !reflect.DeepEqual(got.ts, want.ts) && !(len(got.ts) == 0 && len(want.ts) == 0) {
		t.Fatalf("timestamps %v, want %v", got.ts, want.ts)
	}
	if len(got.cols) != len(want.cols) {
		t.Fatalf("%d columns, want %d", len(got.cols), len(want.cols))
	}
	for c := range want.cols {
		for i := range want.ts {
			g, w := got.cols[c][i], want.cols[c][i]
			if (g == nil) != (w == nil) {
				t.Fatalf("column %d point %d: got %v, want %v", c, i, g, w)
			}
			if g != nil && math.Abs(*g-*w) > tol[c] {
				t.Fatalf("column %d point %d: got %v, want %v", c, i, *g, *w)
			}
		}
	}
}

func tolerances(scales []float64) []float64 {
	out := make([]float64, len(scales))
	for i, s := range scales {
		out[i] = 0.5/s + 1e-9
	}
	return out
}

func TestChunkRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	scales := vmKind.scales
	cases := map[string]*series{
		"empty":  {cols: make([][]*float64, len(scales))},
		"single": {ts: []int64{1700000000123}, cols: [][]*float64{{f(12.34)}, {f(50)}, {nil}, {f(1e9)}, {f(0)}, {f(3.3)}}},
	}
	// An hour at 30 s with jitter, some columns sometimes nil, one always.
	s := &series{cols: make([][]*float64, len(scales))}
	ts := int64(1700000000000)
	for i := range 120 {
		ts += 30000 + int64(r.IntN(200)) - 100
		s.ts = append(s.ts, ts)
		for c := range scales {
			var v *float64
			switch {
			case c == 2: // disk never measured
			case c == 5 && i%7 == 3: // iops missing now and then
			default:
				v = f(r.Float64() * 100 * float64(c+1))
			}
			s.cols[c] = append(s.cols[c], v)
		}
	}
	cases["hour with gaps"] = s
	// Boundaries: the largest value, zero, timestamps before the epoch
	// and far apart.
	cases["extremes"] = &series{ts: []int64{-5000, 0, 1, 1 << 50},
		cols: [][]*float64{{f(0), f(maxValue / 100), f(100), nil}, {nil, nil, nil, f(0.01)}, {f(0.005), f(99.995), nil, f(1)},
			{f(maxValue), f(0), f(1), f(2)}, {f(1), f(maxValue), nil, nil}, {f(0.04), f(0.05), f(0.06), f(0)}}}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := encodeSeries(s, scales)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeSeries(data, scales)
			if err != nil {
				t.Fatal(err)
			}
			equalSeries(t, got, s, tolerances(scales))
		})
	}
}

func TestChunkSize(t *testing.T) {
	// An hour of a VM's samples at 30 s, usages drifting, rates noisy:
	// well under the 29 bytes a sample the storage budget allows.
	r := rand.New(rand.NewPCG(3, 4))
	s := &series{cols: make([][]*float64, len(vmKind.scales))}
	cpu, mem := 20.0, 40.0
	for i := range 120 {
		s.ts = append(s.ts, 1700000000000+int64(i)*30000)
		cpu = math.Max(0, math.Min(100, cpu+r.NormFloat64()*3))
		mem = math.Max(0, math.Min(100, mem+r.NormFloat64()*0.2))
		vals := []*float64{f(cpu), f(mem), f(35), f(5000 + r.Float64()*2000), f(20000 + r.Float64()*5000), f(r.Float64() * 50)}
		for c := range vals {
			s.cols[c] = append(s.cols[c], vals[c])
		}
	}
	data, err := encodeSeries(s, vmKind.scales)
	if err != nil {
		t.Fatal(err)
	}
	per := float64(len(data)) / 120
	t.Logf("%d bytes, %.1f a sample", len(data), per)
	if per > 16 {
		t.Errorf("%.1f bytes a sample, want at most 16", per)
	}
}

func TestChunkRejects(t *testing.T) {
	scales := []float64{1}
	for name, s := range map[string]*series{
		"decreasing": {ts: []int64{2, 1}, cols: [][]*float64{{f(1), f(1)}}},
		"repeated":   {ts: []int64{1, 2, 2}, cols: [][]*float64{{f(1), f(1), f(1)}}},
		"nan":        {ts: []int64{1}, cols: [][]*float64{{f(math.NaN())}}},
		"inf":        {ts: []int64{1}, cols: [][]*float64{{f(math.Inf(1))}}},
		"too large":  {ts: []int64{1}, cols: [][]*float64{{f(maxValue * 2)}}},
		"columns":    {ts: []int64{1}, cols: [][]*float64{{f(1)}, {f(1)}}},
		"short col":  {ts: []int64{1, 2}, cols: [][]*float64{{f(1)}}},
	} {
		if _, err := encodeSeries(s, scales); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	good, err := encodeSeries(&series{ts: []int64{1, 2, 3}, cols: [][]*float64{{f(1), nil, f(3)}}}, scales)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":     nil,
		"format":    {9, 0, 1},
		"truncated": append([]byte{formatRaw}, 3, 1, 2),
		"columns":   append([]byte{formatRaw}, 0, 2),
		"trailing":  append([]byte{formatRaw}, 0, 1, 0, 7),
		"zstd junk": {formatZstd, 1, 2, 3, 4},
	} {
		if _, err := decodeSeries(data, scales); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := decodeSeries(good, []float64{1, 1}); err == nil {
		t.Error("decoded with the wrong number of columns")
	}
	// Every truncation of a valid chunk fails cleanly.
	raw := append([]byte{formatRaw}, mustRaw(t, good)...)
	for i := 1; i < len(raw); i++ {
		if _, err := decodeSeries(raw[:i], scales); err == nil {
			t.Errorf("truncated to %d bytes: decoded", i)
		}
	}
}

func mustRaw(t *testing.T, data []byte) []byte {
	t.Helper()
	if data[0] == formatRaw {
		return data[1:]
	}
	_, dec := codecs()
	b, err := dec.DecodeAll(data[1:], nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMergeAndSlice(t *testing.T) {
	a := &series{ts: []int64{10, 20, 30}, cols: [][]*float64{{f(1), f(2), f(3)}}}
	b := &series{ts: []int64{5, 20, 40}, cols: [][]*float64{{f(0.5), nil, f(4)}}}
	m := merge(a, b)
	equalSeries(t, m, &series{ts: []int64{5, 10, 20, 30, 40}, cols: [][]*float64{{f(0.5), f(1), nil, f(3), f(4)}}}, []float64{0})
	sl := m.slice(10, 30)
	equalSeries(t, sl, &series{ts: []int64{10, 20}, cols: [][]*float64{{f(1), nil}}}, []float64{0})
	// New samples after the old ones are appended, leaving a as it was.
	m = merge(a, &series{ts: []int64{50, 60}, cols: [][]*float64{{nil, f(6)}}})
	equalSeries(t, m, &series{ts: []int64{10, 20, 30, 50, 60}, cols: [][]*float64{{f(1), f(2), f(3), nil, f(6)}}}, []float64{0})
	equalSeries(t, a, &series{ts: []int64{10, 20, 30}, cols: [][]*float64{{f(1), f(2), f(3)}}}, []float64{0})
	if merge(nil, a) != a || merge(a, nil) != a {
		t.Error("merge with nothing is not the other side")
	}
	// seriesOf: sorted, the later of two points at one time wins.
	s := seriesOf(1, []int64{30, 10, 30}, [][]*float64{{f(1)}, {f(2)}, {f(3)}})
	equalSeries(t, s, &series{ts: []int64{10, 30}, cols: [][]*float64{{f(2), f(3)}}}, []float64{0})
}

func TestAggregate(t *testing.T) {
	// Raw: 0, 100, 200 ms in bucket 0; 300 in bucket 300; nil ignored.
	raw := &series{ts: []int64{0, 100, 200, 300, 350}, cols: [][]*float64{{f(1), f(2), nil, f(10), f(20)}, {nil, nil, nil, nil, f(5)}}}
	got := aggregate(raw, false, 300)
	want := &series{ts: []int64{0, 300}, cols: [][]*float64{{f(1.5), f(15)}, {nil, f(5)}, {f(3), f(2)}}}
	equalSeries(t, got, want, []float64{1e-9, 1e-9, 0})
	// Averages of averages are weighted by their counts.
	got = aggregate(want, true, 600)
	equalSeries(t, got, &series{ts: []int64{0}, cols: [][]*float64{{f((1.5*3 + 15*2) / 5)}, {f(5)}, {f(5)}}}, []float64{1e-9, 1e-9, 0})
	// Negative times fall in the bucket below them.
	got = aggregate(&series{ts: []int64{-1, 1}, cols: [][]*float64{{f(1), f(2)}}}, false, 10)
	equalSeries(t, got, &series{ts: []int64{-10, 0}, cols: [][]*float64{{f(1), f(2)}, {f(1), f(1)}}}, []float64{0, 0})
}
