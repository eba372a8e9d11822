package monitor

import (
	"sync"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
)

// observerQueue is how many written batches an observer may fall behind
// before batches are dropped for it.
const observerQueue = 64

type ingested struct {
	hosts []novacron.HostSample
	vms   []novacron.VMSample
}

type observer struct {
	fn      func(hosts []novacron.HostSample, vms []novacron.VMSample)
	c       chan ingested
	once    sync.Once
	done    chan struct{}
	stopped chan struct{}
}

func (o *observer) close() {
	o.once.Do(func() { close(o.done) })
	<-o.stopped
}

// OnIngest calls fn with every batch of samples written from now on (VM
// samples with their TenantID and NodeID set), on a goroutine of its own:
// fn never holds up ingestion. An observer that falls more than 64 batches
// behind misses batches (and the log says so). The returned function stops
// the calls; Close stops them all.
func (s *Service) OnIngest(fn func(hosts []novacron.HostSample, vms []novacron.VMSample)) (stop func()) {
	o := &observer{fn: fn, c: make(chan ingested, observerQueue), done: make(chan struct{}), stopped: make(chan struct{})}
	s.obsMu.Lock()
	s.observers[o] = struct{}{}
	s.obsMu.Unlock()
	go func() {
		defer close(o.stopped)
		for {
			select {
			case in := <-o.c:
				o.fn(in.hosts, in.vms)
			case <-o.done:
				return
			}
		}
	}()
	return func() {
		s.obsMu.Lock()
		delete(s.observers, o)
		s.obsMu.Unlock()
		o.close()
	}
}

// VMEvent is the data of a metrics event about VMs: the samples of one
// round of one node, of the VMs of one tenant.
type VMEvent struct {
	NodeID string              `json:"node_id"`
	VMs    []novacron.VMSample `json:"vms"`
}

// published tells the bus and the observers about samples written.
func (s *Service) published(hosts []novacron.HostSample, vms []novacron.VMSample) {
	if len(hosts) == 0 && len(vms) == 0 {
		return
	}
	for _, h := range hosts {
		s.cfg.Bus.Publish(events.Event{Type: events.TypeMetrics, TS: h.TS, Data: h})
	}
	// One event per tenant and node: a stream's buffer holds a round
	// however many VMs a node runs.
	type key struct{ tenant, node string }
	batches := map[key]*VMEvent{}
	var order []key
	for _, v := range vms {
		k := key{v.TenantID, v.NodeID}
		b := batches[k]
		if b == nil {
			b = &VMEvent{NodeID: v.NodeID}
			batches[k] = b
			order = append(order, k)
		}
		b.VMs = append(b.VMs, v)
	}
	for _, k := range order {
		b := batches[k]
		ids := make([]string, len(b.VMs))
		for i, v := range b.VMs {
			ids[i] = v.VMID
		}
		s.cfg.Bus.Publish(events.Event{Type: events.TypeMetrics, TS: b.VMs[0].TS, TenantID: k.tenant, VMIDs: ids, Data: *b})
	}
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	for o := range s.observers {
		select {
		case o.c <- ingested{hosts: hosts, vms: vms}:
		default:
			s.log.Warn("a metrics observer fell behind; a batch was not given to it", "vm_samples", len(vms))
		}
	}
}
