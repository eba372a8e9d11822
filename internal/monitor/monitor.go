// Package monitor keeps the metrics of VMs and hosts. Agents push batches
// of samples; the service validates them, writes them in compressed chunks
// (an hour of raw samples per VM per row, with 5-minute and hourly averages
// beside them), answers range queries from the coarsest chunks that serve
// the step asked for, prunes what is past retention, publishes each sample
// on the event bus and hands every written batch to its observers (the
// alert engine).
//
// Ingestion never waits for a query or an observer: a batch is queued and
// written by one writer goroutine, queries read through the store's read
// connections, and observers run on goroutines of their own behind bounded
// queues.
package monitor

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
)

// Store is what the service needs of the database.
type Store interface {
	novacron.MetricsStore
	GetVM(ctx context.Context, scope novacron.Scope, id string) (*novacron.VM, error)
}

// Defaults and limits.
const (
	DefaultInterval  = 30 * time.Second
	DefaultRetention = 30 * 24 * time.Hour
	// MaxBatchVMs bounds the VM samples of one batch.
	MaxBatchVMs = 10000
	// DefaultPoints is the most points a query answers without a step.
	DefaultPoints = 1000
	// MaxPoints is the most points a query with a step may ask for.
	MaxPoints = 10000
	// MaxRange is the longest range a query may span.
	MaxRange = 400 * 24 * time.Hour
	// writeAttempts is how many times a write is tried, retryDelay the
	// pause after the first failure (doubling).
	writeAttempts = 3
	// futureSkew is how far ahead of the server's clock a sample may be.
	futureSkew = 5 * time.Minute
)

// Config configures the service.
type Config struct {
	// Interval is how often agents sample (DefaultInterval when 0).
	Interval time.Duration
	// Retention is how long samples are kept (DefaultRetention when 0).
	Retention time.Duration
	// QueueSize is how many batches may wait to be written (default 256).
	QueueSize int
	// Bus receives the TypeMetrics events of what is written: one per host
	// sample, one per round, node and tenant of VM samples; nil is allowed.
	Bus    *events.Bus
	Logger *slog.Logger
	Now    func() time.Time
}

// Batch is what an agent pushes: its host's sample and those of its VMs.
type Batch struct {
	// NodeID is the node the samples come from.
	NodeID string
	Host   *novacron.HostPoint
	// VMs are the node's VM samples; their NodeID and TenantID are set by
	// the service.
	VMs []novacron.VMSample
}

var retryDelay = 500 * time.Millisecond

// Service is the metrics service. It is safe for concurrent use.
type Service struct {
	cfg   Config
	store Store
	log   *slog.Logger

	queue chan *queued
	done  chan struct{}
	wg    sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{}

	tenantMu sync.Mutex
	tenants  map[string]string // VM id → tenant id

	obsMu     sync.Mutex
	observers map[*observer]struct{}
}

type queued struct {
	b     Batch
	flush chan struct{} // set for a Flush marker
}

// New starts a service over st.
func New(st Store, cfg Config) *Service {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, store: st, log: cfg.Logger, queue: make(chan *queued, cfg.QueueSize),
		closed: make(chan struct{}), done: make(chan struct{}), tenants: map[string]string{},
		observers: map[*observer]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.done)
		s.writer()
	}()
	return s
}

// Interval is the sampling interval agents are handed.
func (s *Service) Interval() time.Duration { return s.cfg.Interval }

// Retention is how long samples are kept.
func (s *Service) Retention() time.Duration { return s.cfg.Retention }

// Close stops the writer after it wrote what was queued, and the
// observers. Ingest fails afterwards.
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.wg.Wait()
	s.obsMu.Lock()
	for o := range s.observers {
		o.close()
		delete(s.observers, o)
	}
	s.obsMu.Unlock()
}

// Ingest validates a batch and queues it to be written. It does not wait
// for the write: a full queue is EUnavailable at once.
func (s *Service) Ingest(ctx context.Context, b Batch) error {
	if err := s.validate(&b); err != nil {
		return err
	}
	select {
	case <-s.closed:
		return novacron.Errorf(novacron.EUnavailable, "the metrics service is closed")
	default:
	}
	select {
	case s.queue <- &queued{b: b}:
		return nil
	default:
		return novacron.Errorf(novacron.EUnavailable, "metrics ingestion is behind; retry later")
	}
}

// Flush waits until every batch queued before it has been written (or
// dropped after a failure).
func (s *Service) Flush(ctx context.Context) error {
	q := &queued{flush: make(chan struct{})}
	select {
	case s.queue <- q:
	case <-s.done:
		return errors.New("monitor: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-q.flush:
		return nil
	case <-s.done:
		return errors.New("monitor: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func validValue(field string, v *float64) error {
	if v != nil && (math.IsNaN(*v) || *v < 0 || *v > maxValue) {
		return novacron.FieldError(field, "must be a number between 0 and %g", maxValue)
	}
	return nil
}

func (s *Service) validTime(field string, t time.Time) error {
	now := s.cfg.Now()
	if t.IsZero() || t.After(now.Add(futureSkew)) {
		return novacron.FieldError(field, "must be a time not in the future")
	}
	return nil
}

func (s *Service) validate(b *Batch) error {
	id, err := uuid.Parse(b.NodeID)
	if err != nil {
		return novacron.FieldError("node_id", "must be a node id")
	}
	b.NodeID = id.String()
	if len(b.VMs) > MaxBatchVMs {
		return novacron.FieldError("vms", "at most %d samples a batch", MaxBatchVMs)
	}
	if b.Host != nil {
		if err := s.validTime("host.ts", b.Host.TS); err != nil {
			return err
		}
		for _, v := range hostValues(b.Host) {
			if err := validValue("host", v); err != nil {
				return err
			}
		}
	}
	for i := range b.VMs {
		v := &b.VMs[i]
		id, err := uuid.Parse(v.VMID)
		if err != nil {
			return novacron.FieldError("vms.vm_id", "must be a VM id")
		}
		v.VMID = id.String()
		if err := s.validTime("vms.ts", v.TS); err != nil {
			return err
		}
		for _, x := range vmValues(&v.VMPoint) {
			if err := validValue("vms", x); err != nil {
				return err
			}
		}
		v.NodeID = b.NodeID
		v.TenantID = ""
	}
	return nil
}

// writer writes queued batches, several at a time in one transaction.
func (s *Service) writer() {
	for {
		var first *queued
		select {
		case first = <-s.queue:
		case <-s.closed:
			// Write what is still queued, then stop.
			for {
				select {
				case q := <-s.queue:
					s.writeAll([]*queued{q})
				default:
					return
				}
			}
		}
		qs := []*queued{first}
		n := len(first.b.VMs)
	more:
		for n < 4*MaxBatchVMs {
			select {
			case q := <-s.queue:
				qs = append(qs, q)
				n += len(q.b.VMs)
			default:
				break more
			}
		}
		s.writeAll(qs)
	}
}

func (s *Service) writeAll(qs []*queued) {
	var batches []Batch
	for _, q := range qs {
		if q.flush == nil {
			batches = append(batches, q.b)
		}
	}
	// A failed write (the database away for a moment) is tried again
	// twice; then the batches are dropped, and the log says so.
	for attempt := 1; len(batches) > 0; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		hosts, vms, err := s.Write(ctx, batches)
		cancel()
		if err == nil {
			s.published(hosts, vms)
			break
		}
		if attempt == writeAttempts {
			s.log.Error("metrics dropped: writing them failed", "batches", len(batches), "attempts", attempt, "err", err)
			break
		}
		s.log.Warn("write metrics, will retry", "batches", len(batches), "err", err)
		time.Sleep(retryDelay << (attempt - 1))
	}
	for _, q := range qs {
		if q.flush != nil {
			close(q.flush)
		}
	}
}

// tenantOf returns a VM's tenant, "" for a VM that does not exist.
func (s *Service) tenantOf(ctx context.Context, id string) (string, error) {
	s.tenantMu.Lock()
	t, ok := s.tenants[id]
	s.tenantMu.Unlock()
	if ok {
		return t, nil
	}
	vm, err := s.store.GetVM(ctx, novacron.AllTenants, id)
	if novacron.IsCode(err, novacron.ENotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	s.tenantMu.Lock()
	if len(s.tenants) > 100000 {
		clear(s.tenants)
	}
	s.tenants[id] = vm.TenantID
	s.tenantMu.Unlock()
	return vm.TenantID, nil
}

// Write writes batches at once, in one transaction, and returns the
// samples written (VMs with their tenant). Samples of VMs that do not
// exist and samples past retention are dropped. Ingest is the way in for
// agents; Write is the writer's, and the benchmark's.
func (s *Service) Write(ctx context.Context, batches []Batch) ([]novacron.HostSample, []novacron.VMSample, error) {
	oldest := s.cfg.Now().Add(-s.cfg.Retention)
	var hosts []novacron.HostSample
	var vms []novacron.VMSample
	for _, b := range batches {
		if b.Host != nil && b.Host.TS.After(oldest) {
			hosts = append(hosts, novacron.HostSample{NodeID: b.NodeID, HostPoint: *b.Host})
		}
		for _, v := range b.VMs {
			if !v.TS.After(oldest) {
				continue
			}
			t, err := s.tenantOf(ctx, v.VMID)
			if err != nil {
				return nil, nil, err
			}
			if t == "" {
				continue
			}
			v.TenantID = t
			vms = append(vms, v)
		}
	}
	if len(hosts) == 0 && len(vms) == 0 {
		return nil, nil, nil
	}
	// Raw samples grouped by chunk.
	raw := map[novacron.MetricChunkKey]*pending{}
	add := func(host bool, id string, ts time.Time, vals []*float64) {
		k := novacron.MetricChunkKey{Host: host, ID: id, Resolution: ResRaw, Start: chunkStart(ResRaw, ts)}
		p := raw[k]
		if p == nil {
			p = &pending{}
			raw[k] = p
		}
		p.ts = append(p.ts, msOf(ts))
		p.vals = append(p.vals, vals)
	}
	for i := range hosts {
		add(true, hosts[i].NodeID, hosts[i].TS, hostValues(&hosts[i].HostPoint))
	}
	latest := map[string]novacron.VMSample{}
	for i := range vms {
		add(false, vms[i].VMID, vms[i].TS, vmValues(&vms[i].VMPoint))
		if l, ok := latest[vms[i].VMID]; !ok || !vms[i].TS.Before(l.TS) {
			latest[vms[i].VMID] = vms[i]
		}
	}
	err := s.store.UpdateMetrics(ctx, func(tx novacron.MetricsTx) error {
		return writeChunks(ctx, tx, raw, latest)
	})
	if err != nil {
		return nil, nil, err
	}
	return hosts, vms, nil
}

type pending struct {
	ts   []int64
	vals [][]*float64
}

func kindOf(host bool) kind {
	if host {
		return hostKind
	}
	return vmKind
}

// writeChunks merges new raw samples into their chunks, recomputes the
// 5-minute and hourly averages of every hour they touch, and records the
// latest sample of each VM.
func writeChunks(ctx context.Context, tx novacron.MetricsTx, raw map[novacron.MetricChunkKey]*pending, latest map[string]novacron.VMSample) error {
	keys := make([]novacron.MetricChunkKey, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	merged, err := mergeInto(ctx, tx, keys, func(k novacron.MetricChunkKey) *series {
		p := raw[k]
		return seriesOf(len(kindOf(k.Host).scales), p.ts, p.vals)
	})
	if err != nil {
		return err
	}
	// Averages of the hours touched, grouped by rollup chunk.
	rollups := map[novacron.MetricChunkKey]*series{}
	for k, s := range merged {
		for _, res := range []int{Res5m, Res1h} {
			agg := aggregate(s, false, int64(res)*1000)
			rk := novacron.MetricChunkKey{Host: k.Host, ID: k.ID, Resolution: res, Start: chunkStart(res, k.Start)}
			rollups[rk] = merge(rollups[rk], agg)
		}
	}
	rkeys := make([]novacron.MetricChunkKey, 0, len(rollups))
	for k := range rollups {
		rkeys = append(rkeys, k)
	}
	if _, err := mergeInto(ctx, tx, rkeys, func(k novacron.MetricChunkKey) *series { return rollups[k] }); err != nil {
		return err
	}
	ls := make([]novacron.VMSample, 0, len(latest))
	for _, v := range latest {
		ls = append(ls, v)
	}
	return tx.PutLatest(ctx, ls)
}

// mergeInto loads the chunks of keys, merges the new samples of each into
// it and writes them back; it returns the merged series.
func mergeInto(ctx context.Context, tx novacron.MetricsTx, keys []novacron.MetricChunkKey, fresh func(novacron.MetricChunkKey) *series) (map[novacron.MetricChunkKey]*series, error) {
	old, err := tx.Chunks(ctx, keys)
	if err != nil {
		return nil, err
	}
	byKey := map[novacron.MetricChunkKey]*novacron.MetricChunk{}
	for _, c := range old {
		k := c.MetricChunkKey
		k.Start = k.Start.UTC()
		byKey[k] = c
	}
	out := map[novacron.MetricChunkKey]*series{}
	chunks := make([]*novacron.MetricChunk, 0, len(keys))
	for _, k := range keys {
		scales := kindOf(k.Host).chunkScales(k.Resolution)
		s := fresh(k)
		if c := byKey[k]; c != nil {
			prev, err := decodeSeries(c.Data, scales)
			if err != nil {
				// A chunk that cannot be read is replaced rather than
				// blocking every later write of its resource.
				prev = nil
			}
			s = merge(prev, s)
		}
		data, err := encodeSeries(s, scales)
		if err != nil {
			return nil, err
		}
		out[k] = s
		chunks = append(chunks, &novacron.MetricChunk{MetricChunkKey: k, End: timeOf(s.ts[len(s.ts)-1]), Count: s.Len(), Data: data})
	}
	return out, tx.PutChunks(ctx, chunks)
}
