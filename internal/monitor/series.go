package monitor

import (
	"sort"
	"time"

	"github.com/novacron/novacron"
)

// Resolutions of stored chunks, in seconds per point: raw samples at their
// own times, and averages over 5 minutes and over an hour.
const (
	ResRaw = 1
	Res5m  = 300
	Res1h  = 3600
)

// span is the time one chunk of a resolution covers, aligned to multiples
// of it since the Unix epoch: an hour of raw samples (120 at 30 s), a day
// of 5-minute averages (288), a week of hourly ones (168).
func span(res int) time.Duration {
	switch res {
	case Res5m:
		return 24 * time.Hour
	case Res1h:
		return 7 * 24 * time.Hour
	}
	return time.Hour
}

// chunkStart is the start of the chunk of resolution res holding t.
func chunkStart(res int, t time.Time) time.Time {
	return t.UTC().Truncate(span(res))
}

// kind describes the columns of a resource's points.
type kind struct {
	scales []float64
}

var (
	vmKind = kind{scales: []float64{
		100, // cpu_usage
		100, // memory_usage
		100, // disk_usage
		1,   // network_sent
		1,   // network_recv
		10,  // iops
	}}
	hostKind = kind{scales: []float64{
		100, // cpu_usage
		100, // memory_usage
		1,   // memory_total
		1,   // memory_available
		100, // disk_usage
		1,   // disk_total
		1,   // disk_available
		1,   // network_sent
		1,   // network_recv
		100, // load_average_1
		100, // load_average_5
		100, // load_average_15
	}}
)

// scales returns the column scales of chunks of resolution res: rollups
// carry one more column, how many samples each point averages.
func (k kind) chunkScales(res int) []float64 {
	if res == ResRaw {
		return k.scales
	}
	return append(append([]float64(nil), k.scales...), 1)
}

func (k kind) empty(res int) *series {
	return &series{cols: make([][]*float64, len(k.chunkScales(res)))}
}

func vmValues(p *novacron.VMPoint) []*float64 {
	return []*float64{p.CPUUsage, p.MemoryUsage, p.DiskUsage, p.NetworkSent, p.NetworkRecv, p.IOPS}
}

func hostValues(p *novacron.HostPoint) []*float64 {
	return []*float64{p.CPUUsage, p.MemoryUsage, p.MemoryTotal, p.MemoryAvailable, p.DiskUsage, p.DiskTotal,
		p.DiskAvailable, p.NetworkSent, p.NetworkRecv, p.LoadAverage1, p.LoadAverage5, p.LoadAverage15}
}

func msOf(t time.Time) int64 { return t.UnixMilli() }

func timeOf(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func vmPoint(s *series, i int) novacron.VMPoint {
	c := s.cols
	return novacron.VMPoint{TS: timeOf(s.ts[i]), CPUUsage: c[0][i], MemoryUsage: c[1][i], DiskUsage: c[2][i],
		NetworkSent: c[3][i], NetworkRecv: c[4][i], IOPS: c[5][i]}
}

func hostPoint(s *series, i int) novacron.HostPoint {
	c := s.cols
	return novacron.HostPoint{TS: timeOf(s.ts[i]), CPUUsage: c[0][i], MemoryUsage: c[1][i], MemoryTotal: c[2][i],
		MemoryAvailable: c[3][i], DiskUsage: c[4][i], DiskTotal: c[5][i], DiskAvailable: c[6][i],
		NetworkSent: c[7][i], NetworkRecv: c[8][i], LoadAverage1: c[9][i], LoadAverage5: c[10][i], LoadAverage15: c[11][i]}
}

// seriesOf builds a raw series of points given as value columns, sorted by
// time; of two points at the same millisecond the later one given wins.
func seriesOf(ncols int, ts []int64, vals [][]*float64) *series {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ts[idx[a]] < ts[idx[b]] })
	s := &series{cols: make([][]*float64, ncols)}
	for k, i := range idx {
		if k+1 < len(idx) && ts[idx[k+1]] == ts[i] {
			continue // a later point at the same time wins
		}
		s.ts = append(s.ts, ts[i])
		for c := range ncols {
			s.cols[c] = append(s.cols[c], vals[i][c])
		}
	}
	return s
}

// aggregate averages the points of s into buckets of step milliseconds
// aligned to the epoch. When weighted, the last column of s is the number
// of samples each point stands for and weights it; otherwise every point
// weighs one. The result has the value columns of s and a last column with
// the number of samples behind each bucket. A column with no value in a
// bucket is nil there.
func aggregate(s *series, weighted bool, step int64) *series {
	nv := len(s.cols)
	if weighted {
		nv--
	}
	out := &series{cols: make([][]*float64, nv+1)}
	sums := make([]float64, nv)
	ws := make([]float64, nv)
	var bucket int64
	var count float64
	flush := func() {
		if count == 0 {
			return
		}
		out.ts = append(out.ts, bucket)
		for c := range nv {
			var v *float64
			if ws[c] > 0 {
				a := sums[c] / ws[c]
				v = &a
			}
			out.cols[c] = append(out.cols[c], v)
			sums[c], ws[c] = 0, 0
		}
		n := count
		out.cols[nv] = append(out.cols[nv], &n)
		count = 0
	}
	for i, t := range s.ts {
		b := floorDiv(t, step) * step
		if b != bucket || count == 0 {
			flush()
			bucket = b
		}
		w := 1.0
		if weighted && s.cols[nv][i] != nil {
			w = *s.cols[nv][i]
		}
		count += w
		for c := range nv {
			if v := s.cols[c][i]; v != nil {
				sums[c] += *v * w
				ws[c] += w
			}
		}
	}
	flush()
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
