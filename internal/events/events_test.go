package events

import (
	"sync"
	"testing"
	"time"
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
