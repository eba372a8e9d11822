// Package events is the control plane's in-process event bus: the VM
// service, the metrics store, the alert engine and migrations publish what
// happened; WebSocket streams (and, with several replicas, the PostgreSQL
// notifier) subscribe.
//
// Publishing never blocks: every subscriber has a bounded buffer, and one
// that falls behind is cut off (its Dropped channel closes) rather than
// waited for.
package events

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/novacron/novacron"
)

// Event types, as the WebSocket stream names them.
const (
	TypeMetrics   = "metrics"
	TypeVMState   = "vm_state"
	TypeAlert     = "alert"
	TypeMigration = "migration"
	TypeNode      = "node"
	TypeOperation = "operation"
)

// Event is one thing that happened. TenantID says who may see it: the
// members of that tenant and admins; an empty TenantID is for admins only
// (host metrics, cluster-wide alerts) unless Operators or Public is set.
type Event struct {
	Type string    `json:"type"`
	TS   time.Time `json:"ts"`
	Data any       `json:"data"`

	TenantID string `json:"-"`
	// Operators events may be seen by operators of every tenant as well
	// (nodes, which GET /api/nodes shows operators).
	Operators bool `json:"-"`
	// Public events may be seen by every authenticated caller.
	Public bool `json:"-"`
	// VMID is the VM the event is about, if any, and VMIDs the VMs an
	// event about several is about (for ?vm_id= filters).
	VMID  string   `json:"-"`
	VMIDs []string `json:"-"`

	// wire is shared by the copies of a published event, so that it is
	// encoded once however many subscribers send it.
	wire *wire
}

type wire struct {
	once sync.Once
	b    []byte
	err  error
}

// JSON returns the event as streams send it, {"type","ts","data"}. A
// published event is encoded once, by the first subscriber that asks; the
// bytes are shared and must not be modified.
func (e Event) JSON() ([]byte, error) {
	if e.wire == nil {
		return json.Marshal(e)
	}
	e.wire.once.Do(func() { e.wire.b, e.wire.err = json.Marshal(e) })
	return e.wire.b, e.wire.err
}

// VisibleTo reports whether a may see e: admins see everything; others
// see public events, their own tenant's, and operators also the events
// marked Operators. No caller sees nothing.
func (e Event) VisibleTo(a *novacron.Actor) bool {
	switch {
	case a == nil:
		return false
	case a.Role == novacron.RoleAdmin, e.Public:
		return true
	case e.TenantID != "":
		return e.TenantID == a.TenantID
	}
	return e.Operators && a.Role == novacron.RoleOperator
}

// Subscription receives events until it is closed or falls behind.
type Subscription struct {
	bus *Bus
	// C delivers the events. It is never closed; select on Dropped too.
	C chan Event
	// Dropped is closed when the subscriber fell behind by more than its
	// buffer and was cut off, or was closed.
	Dropped chan struct{}
	filter  func(Event) bool
	once    sync.Once
}

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.bus.remove(s)
}

// Bus fans events out to subscribers.
type Bus struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{subs: map[*Subscription]struct{}{}}
}

// Subscribe returns a subscription with a buffer of size events, receiving
// the events for which filter (nil: all) returns true. The filter runs on
// the publisher's goroutine and must be quick.
func (b *Bus) Subscribe(size int, filter func(Event) bool) *Subscription {
	if size < 1 {
		size = 1
	}
	s := &Subscription{bus: b, C: make(chan Event, size), Dropped: make(chan struct{}), filter: filter}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Subscribers returns the number of live subscriptions (0 on a nil bus).
func (b *Bus) Subscribers() int {
	if b == nil {
		return 0
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Publish delivers e to every subscriber whose filter accepts it, without
// waiting: a subscriber whose buffer is full is cut off. A zero TS is set
// to now. A nil bus discards the event.
func (b *Bus) Publish(e Event) {
	if b == nil {
		return
	}
	if e.TS.IsZero() {
		e.TS = time.Now().UTC()
	}
	e.wire = &wire{}
	var full []*Subscription
	b.mu.RLock()
	for s := range b.subs {
		if s.filter != nil && !s.filter(e) {
			continue
		}
		select {
		case s.C <- e:
		default:
			full = append(full, s)
		}
	}
	b.mu.RUnlock()
	for _, s := range full {
		b.remove(s)
	}
}

func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
	s.once.Do(func() { close(s.Dropped) })
}

// About reports whether e is about one of the VMs ids.
func (e Event) About(ids []string) bool {
	for _, id := range ids {
		if id == e.VMID || slices.Contains(e.VMIDs, id) {
			return true
		}
	}
	return false
}
