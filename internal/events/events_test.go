package events

import (
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func TestPublishFiltersAndOrder(t *testing.T) {
	b := NewBus()
	all := b.Subscribe(10, nil)
	vm := b.Subscribe(10, func(e Event) bool { return e.VMID == "a" })
	for i, id := range []string{"a", "b", "a"} {
		b.Publish(Event{Type: TypeVMState, VMID: id, Data: i})
	}
	for _, want := range []int{0, 1, 2} {
		if e := <-all.C; e.Data != want || e.TS.IsZero() {
			t.Fatalf("all: got %+v, want data %d with a time", e, want)
		}
	}
	for _, want := range []int{0, 2} {
		if e := <-vm.C; e.Data != want {
			t.Fatalf("filtered: got %+v, want data %d", e, want)
		}
	}
	select {
	case e := <-vm.C:
		t.Fatalf("the filter let through %+v", e)
	default:
	}
	if n := b.Subscribers(); n != 2 {
		t.Fatalf("%d subscribers, want 2", n)
	}
	all.Close()
	all.Close()
	if n := b.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers after Close, want 1", n)
	}
}

// A subscriber that falls behind is cut off; the others still get every
// event and the publisher never waits.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	b := NewBus()
	slow := b.Subscribe(2, nil)
	fast := b.Subscribe(100, nil)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			b.Publish(Event{Type: TypeMetrics, Data: i})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish waited for a slow subscriber")
	}
	select {
	case <-slow.Dropped:
	default:
		t.Fatal("the slow subscriber was not cut off")
	}
	if len(fast.C) != 50 {
		t.Fatalf("the fast subscriber got %d events, want 50", len(fast.C))
	}
	if n := b.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers, want 1", n)
	}
}

func TestConcurrentPublishSubscribe(t *testing.T) {
	b := NewBus()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				s := b.Subscribe(1, nil)
				b.Publish(Event{Type: TypeNode})
				s.Close()
			}
		})
	}
	wg.Wait()
	if n := b.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers left", n)
	}
	var nilBus *Bus
	nilBus.Publish(Event{Type: TypeNode})
}

func TestVisibleTo(t *testing.T) {
	admin := &novacron.Actor{Role: novacron.RoleAdmin, TenantID: "t0"}
	op := &novacron.Actor{Role: novacron.RoleOperator, TenantID: "a"}
	userA := &novacron.Actor{Role: novacron.RoleUser, TenantID: "a"}
	userB := &novacron.Actor{Role: novacron.RoleUser, TenantID: "b"}
	for _, c := range []struct {
		name  string
		e     Event
		actor *novacron.Actor
		want  bool
	}{
		{"no caller", Event{Public: true}, nil, false},
		{"admin, another tenant", Event{TenantID: "a"}, admin, true},
		{"admin, cluster-wide", Event{}, admin, true},
		{"member of the tenant", Event{TenantID: "a"}, userA, true},
		{"member of another tenant", Event{TenantID: "a"}, userB, false},
		{"operator, another tenant", Event{TenantID: "b"}, op, false},
		{"user, cluster-wide", Event{}, userA, false},
		{"operator, cluster-wide", Event{}, op, false},
		{"operator, node", Event{Operators: true}, op, true},
		{"user, node", Event{Operators: true}, userA, false},
		{"user, public", Event{Public: true}, userB, true},
	} {
		if got := c.e.VisibleTo(c.actor); got != c.want {
			t.Errorf("%s: VisibleTo = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestJSONEncodedOnce(t *testing.T) {
	b := NewBus()
	s1, s2 := b.Subscribe(1, nil), b.Subscribe(1, nil)
	data := map[string]int{"n": 1}
	b.Publish(Event{Type: TypeMetrics, TS: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Data: data, TenantID: "secret"})
	e1, e2 := <-s1.C, <-s2.C
	j1, err := e1.JSON()
	if err != nil {
		t.Fatal(err)
	}
	data["n"] = 2 // a later change is not seen: the first encoding is kept
	j2, _ := e2.JSON()
	want := `{"type":"metrics","ts":"2026-01-02T03:04:05Z","data":{"n":1}}`
	if string(j1) != want || string(j2) != want {
		t.Fatalf("JSON %s and %s, want %s (once, without the audience)", j1, j2, want)
	}
	if j, _ := (Event{Type: TypeNode, Data: 1}).JSON(); string(j) != `{"type":"node","ts":"0001-01-01T00:00:00Z","data":1}` {
		t.Fatalf("an unpublished event: %s", j)
	}
}
