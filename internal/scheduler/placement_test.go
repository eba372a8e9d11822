package scheduler_test

import (
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/scheduler"
)

// node returns an online, undrained node with the qemu and container drivers,
// zone label a, 8 CPUs, 16 GiB and 100 GB, nothing allocated; opts adjust it.
func node(id string, opts ...func(*scheduler.Node)) scheduler.Node {
	n := scheduler.Node{ID: id, Name: "host-" + id, Status: novacron.NodeOnline,
		Labels:   map[string]string{"zone": "a"},
		Drivers:  []string{novacron.DriverQEMU, novacron.DriverContainer},
		Capacity: scheduler.Resources{CPUs: 8, MemoryMB: 16384, DiskGB: 100}}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func status(s string) func(*scheduler.Node) { return func(n *scheduler.Node) { n.Status = s } }
func drained(n *scheduler.Node)             { n.Drained = true }
func drivers(d ...string) func(*scheduler.Node) {
	return func(n *scheduler.Node) { n.Drivers = d }
}
func labels(kv ...string) func(*scheduler.Node) {
	return func(n *scheduler.Node) {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}
func alloc(cpus int, mem, disk int64) func(*scheduler.Node) {
	return func(n *scheduler.Node) { n.Allocated = scheduler.Resources{CPUs: cpus, MemoryMB: mem, DiskGB: disk} }
}
func capacity(cpus int, mem, disk int64) func(*scheduler.Node) {
	return func(n *scheduler.Node) { n.Capacity = scheduler.Resources{CPUs: cpus, MemoryMB: mem, DiskGB: disk} }
}

// vm is a 2 CPU, 2 GiB, 10 GB qemu VM.
func vm(opts ...func(*scheduler.Request)) scheduler.Request {
	r := scheduler.Request{Driver: novacron.DriverQEMU, CPUs: 2, MemoryMB: 2048, DiskGB: 10}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func binpack() scheduler.Policy { return scheduler.DefaultPolicy() }
func spread() scheduler.Policy {
	p := scheduler.DefaultPolicy()
	p.Strategy = scheduler.Spread
	return p
}

// TestPlace checks where a VM goes: each filter, both strategies, overcommit
// and node_selector. A want of "" means no_capacity with exactly reasons.
func TestPlace(t *testing.T) {
	overcommit := func(cpu, mem, disk float64) scheduler.Policy {
		p := scheduler.DefaultPolicy()
		p.CPUOvercommit, p.MemoryOvercommit, p.DiskOvercommit = cpu, mem, disk
		return p
	}
	tests := []struct {
		name    string
		nodes   []scheduler.Node
		req     scheduler.Request
		policy  scheduler.Policy
		want    string
		reasons map[string]string
	}{
		{name: "offline skipped",
			nodes: []scheduler.Node{node("n1", status(novacron.NodeOffline)), node("n2")},
			req:   vm(), policy: binpack(), want: "n2"},
		{name: "maintenance skipped",
			nodes: []scheduler.Node{node("n1", status(novacron.NodeMaintenance)), node("n2")},
			req:   vm(), policy: binpack(), want: "n2"},
		{name: "drained skipped even when it is the best fit",
			nodes: []scheduler.Node{node("n1", drained, alloc(4, 0, 0)), node("n2")},
			req:   vm(), policy: binpack(), want: "n2"},
		{name: "driver missing",
			nodes: []scheduler.Node{node("n1", drivers(novacron.DriverContainer)), node("n2")},
			req:   vm(), policy: binpack(), want: "n2"},
		{name: "node_selector",
			nodes:  []scheduler.Node{node("n1", alloc(6, 0, 0)), node("n2", labels("zone", "b", "gpu", "yes"))},
			req:    vm(func(r *scheduler.Request) { r.NodeSelector = map[string]string{"zone": "b"} }),
			policy: binpack(), want: "n2"},
		{name: "node_selector needs every label",
			nodes:  []scheduler.Node{node("n1", labels("zone", "b")), node("n2", labels("zone", "b", "gpu", "yes"))},
			req:    vm(func(r *scheduler.Request) { r.NodeSelector = map[string]string{"zone": "b", "gpu": "yes"} }),
			policy: spread(), want: "n2"},
		{name: "not enough CPU",
			nodes: []scheduler.Node{node("n1", alloc(7, 0, 0)), node("n2", alloc(5, 0, 0))},
			req:   vm(), policy: binpack(), want: "n2"},
		{name: "not enough memory",
			nodes: []scheduler.Node{node("n1", alloc(0, 15000, 0)), node("n2", alloc(0, 14000, 0))},
			req:   vm(), policy: binpack(), want: "n2"},
		{name: "not enough disk",
			nodes: []scheduler.Node{node("n1", alloc(0, 0, 95)), node("n2", alloc(0, 0, 90))},
			req:   vm(), policy: binpack(), want: "n2"},
		{name: "exactly full fits",
			nodes: []scheduler.Node{node("n1", alloc(6, 14336, 90))},
			req:   vm(), policy: binpack(), want: "n1"},
		{name: "no disk asked fits a diskless node",
			nodes: []scheduler.Node{node("n1", capacity(8, 16384, 0))},
			req:   vm(func(r *scheduler.Request) { r.DiskGB = 0 }), policy: binpack(), want: "n1"},

		// n1 is half full, n2 empty: binpack fills n1, spread uses n2.
		{name: "binpack picks the fuller node",
			nodes: []scheduler.Node{node("n1", alloc(4, 0, 0)), node("n2")},
			req:   vm(), policy: binpack(), want: "n1"},
		{name: "spread picks the emptier node",
			nodes: []scheduler.Node{node("n1", alloc(4, 0, 0)), node("n2")},
			req:   vm(), policy: spread(), want: "n2"},
		// The dominant share decides: n1 is 75% full of memory after
		// placement, n2 62.5% full of CPU.
		{name: "binpack by dominant share",
			nodes: []scheduler.Node{node("n1", alloc(0, 10240, 0)), node("n2", alloc(3, 0, 0))},
			req:   vm(), policy: binpack(), want: "n1"},
		{name: "spread by dominant share",
			nodes: []scheduler.Node{node("n1", alloc(0, 10240, 0)), node("n2", alloc(3, 0, 0))},
			req:   vm(), policy: spread(), want: "n2"},
		{name: "tie goes to the lowest id",
			nodes: []scheduler.Node{node("n3"), node("n1"), node("n2")},
			req:   vm(), policy: spread(), want: "n1"},

		{name: "cpu overcommit lets a full node take more",
			nodes: []scheduler.Node{node("n1", alloc(8, 0, 0))},
			req:   vm(), policy: overcommit(1.5, 1, 1), want: "n1"},
		{name: "cpu overcommit limit",
			nodes: []scheduler.Node{node("n1", alloc(11, 0, 0))},
			req:   vm(), policy: overcommit(1.5, 1, 1),
			reasons: map[string]string{"n1": "not enough CPU: 1 free of 12 (8 × overcommit 1.5), 2 asked"}},
		{name: "memory overcommit",
			nodes: []scheduler.Node{node("n1", alloc(0, 16384, 0))},
			req:   vm(), policy: overcommit(1, 2, 1), want: "n1"},
		{name: "disk overcommit",
			nodes: []scheduler.Node{node("n1", alloc(0, 0, 100))},
			req:   vm(), policy: overcommit(1, 1, 1.1), want: "n1"},
		// After placement n1 has 6 CPUs of 16 overcommitted (0.375; of 8
		// physical it would be 0.75) and n2 10 GiB of 16 (0.625): binpack
		// scores against the overcommitted capacity.
		{name: "binpack scores against overcommitted capacity",
			nodes: []scheduler.Node{node("n1", alloc(4, 0, 0)), node("n2", alloc(0, 8192, 0))},
			req:   vm(), policy: overcommit(2, 1, 1), want: "n2"},

		{name: "no capacity: a reason for every node",
			nodes: []scheduler.Node{
				node("n1", status(novacron.NodeOffline)),
				node("n2", status(novacron.NodeMaintenance)),
				node("n3", drained),
				node("n4", drivers(novacron.DriverContainer)),
				node("n5", labels("zone", "b")),
				node("n6", labels("rack", "1")),
				node("n7", alloc(7, 0, 0)),
				node("n8", alloc(0, 15360, 0)),
				node("n9", alloc(0, 0, 95)),
				node("n10", status("joining")),
			},
			req:    vm(func(r *scheduler.Request) { r.NodeSelector = map[string]string{"zone": "a"} }),
			policy: binpack(),
			reasons: map[string]string{
				"n1":  "offline",
				"n2":  "in maintenance",
				"n3":  "drained",
				"n4":  "no qemu driver",
				"n5":  `labels do not match node_selector: zone is "b", "a" asked`,
				"n6":  `labels do not match node_selector: no label zone, "a" asked`,
				"n7":  "not enough CPU: 1 free of 8 (overcommit 1.0), 2 asked",
				"n8":  "not enough memory: 1024 MB free of 16384 MB (overcommit 1.0), 2048 MB asked",
				"n9":  "not enough disk: 5 GB free of 100 GB (overcommit 1.0), 10 GB asked",
				"n10": `status "joining" is not online`,
			}},
		{name: "first failing filter is the one reported",
			nodes: []scheduler.Node{node("n1", status(novacron.NodeMaintenance), drained, alloc(8, 0, 0))},
			req:   vm(), policy: binpack(),
			reasons: map[string]string{"n1": "in maintenance"}},
		{name: "over-allocated node shows zero free",
			nodes: []scheduler.Node{node("n1", alloc(10, 0, 0))},
			req:   vm(), policy: binpack(),
			reasons: map[string]string{"n1": "not enough CPU: 0 free of 8 (overcommit 1.0), 2 asked"}},
		{name: "no nodes",
			nodes: nil, req: vm(), policy: binpack(), reasons: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := scheduler.Place(tt.nodes, tt.req, tt.policy)
			if tt.want != "" {
				if err != nil {
					t.Fatalf("Place: %v", err)
				}
				if d.NodeID != tt.want {
					t.Fatalf("placed on %s, want %s", d.NodeID, tt.want)
				}
				if d.Pinned {
					t.Error("decision is pinned")
				}
				return
			}
			if err == nil {
				t.Fatalf("placed on %s, want no_capacity", d.NodeID)
			}
			if c := novacron.ErrorCode(err); c != novacron.ENoCapacity {
				t.Fatalf("code %s (%v), want %s", c, err, novacron.ENoCapacity)
			}
			got := scheduler.Reasons(err)
			if got == nil || !maps.Equal(got, tt.reasons) {
				t.Errorf("reasons:\n got %q\nwant %q", got, tt.reasons)
			}
		})
	}
}

func TestPlaceScoreAndEligible(t *testing.T) {
	nodes := []scheduler.Node{node("n1", alloc(4, 0, 0)), node("n2"), node("n3", drained)}
	d, err := scheduler.Place(nodes, vm(), binpack())
	if err != nil {
		t.Fatal(err)
	}
	// n1: 6 of 8 CPUs after scheduler.
	if d.NodeID != "n1" || d.Score != 0.75 || d.Eligible != 2 {
		t.Errorf("got %+v, want n1 with score 0.75, 2 eligible", d)
	}
}

func TestPlacePin(t *testing.T) {
	nodes := []scheduler.Node{
		node("n1", alloc(4, 0, 0)),
		node("n2"),
		node("full", alloc(8, 0, 0)),
		node("drained", drained),
		node("maint", status(novacron.NodeMaintenance)),
		node("nodriver", drivers(novacron.DriverProcess)),
	}
	pin := func(id string) scheduler.Request {
		return vm(func(r *scheduler.Request) { r.PinNodeID = id })
	}

	t.Run("ok, against the score", func(t *testing.T) {
		d, err := scheduler.Place(nodes, pin("n2"), binpack())
		if err != nil {
			t.Fatal(err)
		}
		if d.NodeID != "n2" || !d.Pinned || d.Score != 0.25 {
			t.Errorf("got %+v, want pinned n2 at 0.25", d)
		}
	})
	for id, reason := range map[string]string{
		"full":     "not enough CPU: 0 free of 8 (overcommit 1.0), 2 asked",
		"drained":  "drained",
		"maint":    "in maintenance",
		"nodriver": "no qemu driver",
	} {
		t.Run("pinned "+id, func(t *testing.T) {
			_, err := scheduler.Place(nodes, pin(id), binpack())
			if c := novacron.ErrorCode(err); c != novacron.ENoCapacity {
				t.Fatalf("code %q (%v), want no_capacity", c, err)
			}
			if got := scheduler.Reasons(err); !maps.Equal(got, map[string]string{id: reason}) {
				t.Errorf("reasons %q, want only %s: %q", got, id, reason)
			}
			if msg := novacron.ErrorMessage(err); !strings.Contains(msg, id) || !strings.Contains(msg, reason) {
				t.Errorf("message %q does not name the node and the reason", msg)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := scheduler.Place(nodes, pin("nope"), binpack())
		var e *novacron.Error
		if !errors.As(err, &e) || e.Code != novacron.ENotFound || e.Details["field"] != "node_id" {
			t.Fatalf("got %v, want not_found on node_id", err)
		}
		if scheduler.Reasons(err) != nil {
			t.Error("not_found carries no_capacity reasons")
		}
	})
}

// TestPlaceDeterministic shuffles a cluster with many ties and checks the
// decision never changes.
func TestPlaceDeterministic(t *testing.T) {
	var nodes []scheduler.Node
	for i := range 50 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		nodes = append(nodes, node(id, alloc(i%3, int64(i%4)*1024, 0)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []scheduler.Policy{binpack(), spread()} {
		want, err := scheduler.Place(nodes, vm(), p)
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			shuffled := slices.Clone(nodes)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got, err := scheduler.Place(shuffled, vm(), p)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%s: shuffled input gave %+v, want %+v", p.Strategy, got, want)
			}
		}
		t.Logf("%s: %s", p.Strategy, want.NodeID)
	}
	// The fullest after placement are the nodes with 2 CPUs allocated (4
	// of 8); the lowest of their ids is ab (i = 26). The emptiest have no
	// CPU and at most 2 GiB allocated (a quarter); the lowest is aa.
	if d, _ := scheduler.Place(nodes, vm(), binpack()); d.NodeID != "ab" {
		t.Errorf("binpack chose %s, want ab", d.NodeID)
	}
	if d, _ := scheduler.Place(nodes, vm(), spread()); d.NodeID != "aa" {
		t.Errorf("spread chose %s, want aa", d.NodeID)
	}
}

func TestRequestValidate(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name  string
		mod   func(*scheduler.Request)
		field string
	}{
		{"no driver", func(r *scheduler.Request) { r.Driver = "" }, "driver"},
		{"zero cpus", func(r *scheduler.Request) { r.CPUs = 0 }, "cpus"},
		{"huge cpus", func(r *scheduler.Request) { r.CPUs = scheduler.MaxCPUs + 1 }, "cpus"},
		{"zero memory", func(r *scheduler.Request) { r.MemoryMB = 0 }, "memory_mb"},
		{"negative disk", func(r *scheduler.Request) { r.DiskGB = -1 }, "disk_gb"},
		{"bad selector key", func(r *scheduler.Request) { r.NodeSelector = map[string]string{"-x": "1"} }, "node_selector"},
		{"long selector key", func(r *scheduler.Request) { r.NodeSelector = map[string]string{long[:64]: "1"} }, "node_selector"},
		{"long selector value", func(r *scheduler.Request) { r.NodeSelector = map[string]string{"zone": long} }, "node_selector.zone"},
		{"long pin", func(r *scheduler.Request) { r.PinNodeID = long }, "node_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scheduler.Place([]scheduler.Node{node("n1")}, vm(tt.mod), binpack())
			var e *novacron.Error
			if !errors.As(err, &e) || e.Code != novacron.EInvalid || e.Details["field"] != tt.field {
				t.Fatalf("got %v, want invalid_request on %s", err, tt.field)
			}
		})
	}
	// The edges that are allowed.
	ok := vm(func(r *scheduler.Request) {
		r.CPUs, r.MemoryMB, r.DiskGB = 1, 1, 0
		r.NodeSelector = map[string]string{long[:63]: long[:255], "zone": ""}
	})
	if err := ok.Validate(); err != nil {
		t.Errorf("edge request: %v", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, p := range []scheduler.Policy{
		{},
		{Strategy: "random", CPUOvercommit: 1, MemoryOvercommit: 1, DiskOvercommit: 1},
		{Strategy: scheduler.Binpack, CPUOvercommit: 0.5, MemoryOvercommit: 1, DiskOvercommit: 1},
		{Strategy: scheduler.Binpack, CPUOvercommit: 1, MemoryOvercommit: 65, DiskOvercommit: 1},
		{Strategy: scheduler.Spread, CPUOvercommit: 1, MemoryOvercommit: 1, DiskOvercommit: math.NaN()},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: valid", p)
		} else if _, err := scheduler.Place([]scheduler.Node{node("n1")}, vm(), p); err == nil {
			t.Errorf("%+v: Place accepted it", p)
		}
	}
	if err := (scheduler.Policy{Strategy: scheduler.Spread, CPUOvercommit: 64, MemoryOvercommit: 1, DiskOvercommit: 1.5}).Validate(); err != nil {
		t.Errorf("edge policy: %v", err)
	}
}
