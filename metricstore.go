package novacron

import (
	"context"
	"time"
)

// MetricChunk is a stretch of one resource's samples at one resolution,
// kept as one row. The monitor encodes and decodes Data; the store only
// keeps it.
type MetricChunk struct {
	MetricChunkKey
	// End is the time of the chunk's last point.
	End   time.Time
	Count int
	Data  []byte
}

// MetricChunkKey names a chunk.
type MetricChunkKey struct {
	// Host chunks are a node's (system_metrics), others a VM's
	// (vm_metrics).
	Host bool
	// ID is the VM's or the node's id.
	ID string
	// Resolution is in seconds per point; 1 is raw samples at their own
	// times.
	Resolution int
	// Start is the start of the time the chunk covers.
	Start time.Time
}

// MetricsTx is one write transaction on metrics.
type MetricsTx interface {
	// Chunks returns those of the chunks named by keys that exist.
	Chunks(ctx context.Context, keys []MetricChunkKey) ([]*MetricChunk, error)
	// PutChunks inserts chunks or replaces those with the same key. A
	// chunk of a VM or node that does not exist (any more) is skipped.
	PutChunks(ctx context.Context, chunks []*MetricChunk) error
	// PutLatest records each VM's latest sample unless a later one is
	// already recorded. Samples of VMs that do not exist are skipped.
	PutLatest(ctx context.Context, samples []VMSample) error
}

// MetricsStore keeps metric chunks. Every read takes the caller's scope or
// is for admins and the system only.
type MetricsStore interface {
	// UpdateMetrics runs fn in one transaction, committed when fn returns
	// nil. Concurrent updates of the same chunks are serialised.
	UpdateMetrics(ctx context.Context, fn func(tx MetricsTx) error) error
	// VMMetricChunks returns the chunks of resolution res of a VM the scope
	// sees whose Start is within [from, to], oldest first; none for a VM
	// outside the scope.
	VMMetricChunks(ctx context.Context, scope Scope, vmID string, res int, from, to time.Time) ([]*MetricChunk, error)
	// HostMetricChunks returns the chunks of resolution res of a node, or
	// of every node when nodeID is empty, whose Start is within [from, to],
	// by node then oldest first.
	HostMetricChunks(ctx context.Context, nodeID string, res int, from, to time.Time) ([]*MetricChunk, error)
	// LatestVMMetrics returns the latest sample of every VM the scope sees,
	// with TenantID and NodeID set, by VM id.
	LatestVMMetrics(ctx context.Context, scope Scope) ([]VMSample, error)
	// PruneMetrics deletes the chunks whose last point is before t and the
	// latest samples taken before t, and reports how many rows went.
	PruneMetrics(ctx context.Context, before time.Time) (int64, error)
}
