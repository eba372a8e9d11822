package monitor

import (
	"context"
	"time"

	"github.com/novacron/novacron"
)

// Query is a range of time and an optional step. A zero From or To is
// resolved by Resolve.
type Query struct {
	From, To time.Time
	// Step averages points into buckets of this length aligned to the
	// epoch; 0 asks for raw points, or the smallest step of the ladder
	// that gives at most DefaultPoints.
	Step time.Duration
}

// steps is the ladder of default steps.
var steps = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// Resolve fills in the defaults of q (the last hour; the default step) and
// checks its limits; errors name the field at fault.
func (s *Service) Resolve(q Query) (Query, error) {
	now := s.cfg.Now().UTC()
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
	}
	q.From, q.To = q.From.UTC(), q.To.UTC()
	if !q.From.Before(q.To) {
		return q, novacron.FieldError("from", "must be before to")
	}
	r := q.To.Sub(q.From)
	if r > MaxRange {
		return q, novacron.FieldError("from", "the range may span at most %s", MaxRange)
	}
	if q.Step != 0 {
		if q.Step < time.Second || q.Step%time.Second != 0 {
			return q, novacron.FieldError("step", "must be a whole number of seconds, at least 1s")
		}
		if r/q.Step > MaxPoints {
			return q, novacron.FieldError("step", "gives more than %d points over this range; take a longer step", MaxPoints)
		}
		return q, nil
	}
	if r/s.cfg.Interval <= DefaultPoints {
		return q, nil
	}
	q.Step = defaultStep(r)
	return q, nil
}

// defaultStep is the smallest step of the ladder that gives at most
// DefaultPoints over r.
func defaultStep(r time.Duration) time.Duration {
	for _, st := range steps {
		if r/st <= DefaultPoints {
			return st
		}
	}
	return (r/DefaultPoints + time.Hour - 1).Truncate(time.Hour)
}

// source is the resolution of the chunks a step is computed from: the
// coarsest rollup whose points divide the step.
func source(step time.Duration) int {
	sec := int64(step / time.Second)
	switch {
	case sec == 0:
		return ResRaw
	case sec%Res1h == 0:
		return Res1h
	case sec%Res5m == 0:
		return Res5m
	}
	return ResRaw
}

// read decodes the chunks of one resource, in order, and returns the
// samples in [from, to] of a raw or rollup series.
func read(chunks []*novacron.MetricChunk, k kind, res int, from, to time.Time) (*series, error) {
	scales := k.chunkScales(res)
	out := k.empty(res)
	for _, c := range chunks {
		s, err := decodeSeries(c.Data, scales)
		if err != nil {
			return nil, err
		}
		s = s.slice(msOf(from), msOf(to)+1)
		out.ts = append(out.ts, s.ts...)
		for i := range out.cols {
			out.cols[i] = append(out.cols[i], s.cols[i]...)
		}
	}
	return out, nil
}

// window returns the chunk start range and the sample range to read.
// Nothing older than retention is read: chunks go by their last point, so
// the older part of a chunk (up to a week of hourly averages) outlives
// retention until the whole chunk is pruned.
func (s *Service) window(q Query, res int) (chunkFrom, from, to time.Time) {
	from = q.From
	if q.Step > 0 {
		st := q.Step.Milliseconds()
		from = timeOf(floorDiv(msOf(q.From), st) * st)
	}
	if cutoff := s.cfg.Now().Add(-s.cfg.Retention); from.Before(cutoff) {
		from = cutoff
	}
	return chunkStart(res, from), from, q.To
}

// points turns a read series into its points, averaged by q.Step. Raw
// points asked for without a step are averaged anyway when there are more
// than DefaultPoints of them (samples taken more often than the interval
// now configured), by the step the range would have had by default.
func points(s *series, res int, q Query) *series {
	step := q.Step
	if step == 0 && s.Len() > DefaultPoints {
		step = defaultStep(q.To.Sub(q.From))
	}
	if step == 0 {
		return s
	}
	return aggregate(s, res != ResRaw, step.Milliseconds())
}

// QueryVM returns the points of a VM the scope sees, over a resolved
// query. A VM outside the scope has none; callers check the VM first.
func (s *Service) QueryVM(ctx context.Context, scope novacron.Scope, vmID string, q Query) ([]novacron.VMPoint, error) {
	res := source(q.Step)
	cf, from, to := s.window(q, res)
	chunks, err := s.store.VMMetricChunks(ctx, scope, vmID, res, cf, to)
	if err != nil {
		return nil, err
	}
	sr, err := read(chunks, vmKind, res, from, to)
	if err != nil {
		return nil, err
	}
	ps := points(sr, res, q)
	out := make([]novacron.VMPoint, ps.Len())
	for i := range out {
		out[i] = vmPoint(ps, i)
	}
	return out, nil
}

// HostSeries is the points of one node.
type HostSeries struct {
	NodeID string               `json:"node_id"`
	Points []novacron.HostPoint `json:"points"`
}

// QueryHosts returns the points of one node, or of every node when nodeID
// is empty, over a resolved query.
func (s *Service) QueryHosts(ctx context.Context, nodeID string, q Query) ([]HostSeries, error) {
	res := source(q.Step)
	cf, from, to := s.window(q, res)
	chunks, err := s.store.HostMetricChunks(ctx, nodeID, res, cf, to)
	if err != nil {
		return nil, err
	}
	out := []HostSeries{}
	for i := 0; i < len(chunks); {
		j := i
		for j < len(chunks) && chunks[j].ID == chunks[i].ID {
			j++
		}
		sr, err := read(chunks[i:j], hostKind, res, from, to)
		if err != nil {
			return nil, err
		}
		ps := points(sr, res, q)
		hs := HostSeries{NodeID: chunks[i].ID, Points: make([]novacron.HostPoint, ps.Len())}
		for k := range hs.Points {
			hs.Points[k] = hostPoint(ps, k)
		}
		out = append(out, hs)
		i = j
	}
	return out, nil
}

// LatestVMs returns the latest sample of every VM the scope sees.
func (s *Service) LatestVMs(ctx context.Context, scope novacron.Scope) ([]novacron.VMSample, error) {
	return s.store.LatestVMMetrics(ctx, scope)
}

// Latest returns the latest sample of every VM, with TenantID and NodeID
// set, for the per-VM gauges of /metrics.
func (s *Service) Latest(ctx context.Context) ([]novacron.VMSample, error) {
	return s.store.LatestVMMetrics(ctx, novacron.AllTenants)
}

// Prune deletes what is past retention.
func (s *Service) Prune(ctx context.Context) (int64, error) {
	return s.store.PruneMetrics(ctx, s.cfg.Now().Add(-s.cfg.Retention))
}
