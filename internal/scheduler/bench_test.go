package scheduler_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/scheduler"
)

// cluster builds a fixed cluster of n nodes (varied sizes, three zones, a few
// offline, in maintenance or drained) and places vms VMs of varied sizes on
// it, so the allocations are those of a real, uneven cluster.
func cluster(tb testing.TB, n, vms int) []scheduler.Node {
	rng := rand.New(rand.NewPCG(42, 1))
	nodes := make([]scheduler.Node, n)
	for i := range nodes {
		cpus := []int{32, 64, 96, 128}[rng.IntN(4)]
		nodes[i] = scheduler.Node{
			ID:       fmt.Sprintf("node-%04d", i),
			Name:     fmt.Sprintf("host%d", i),
			Status:   novacron.NodeOnline,
			Labels:   map[string]string{"zone": string(rune('a' + i%3)), "rack": fmt.Sprint(i / 40)},
			Drivers:  []string{novacron.DriverQEMU, novacron.DriverContainer},
			Capacity: scheduler.Resources{CPUs: cpus, MemoryMB: int64(cpus) * 4096, DiskGB: 4000},
		}
		switch r := rng.IntN(100); {
		case r < 4:
			nodes[i].Status = novacron.NodeOffline
		case r < 6:
			nodes[i].Status = novacron.NodeMaintenance
		case r < 8:
			nodes[i].Drained = true
		case r < 20:
			nodes[i].Drivers = append(nodes[i].Drivers, novacron.DriverProcess)
		}
	}
	placed := 0
	for range vms {
		c := []int{1, 2, 4, 8}[rng.IntN(4)]
		mem := int64(c) * []int64{1024, 2048, 4096}[rng.IntN(3)]
		disk := int64(10 + rng.IntN(90))
		// The VM goes to the first node at or after a random one that has
		// room, as a cluster filled over time by many replicas would be.
		start := rng.IntN(n)
		for j := range n {
			nd := &nodes[(start+j)%n]
			if nd.Allocated.CPUs+c <= nd.Capacity.CPUs && nd.Allocated.MemoryMB+mem <= nd.Capacity.MemoryMB &&
				nd.Allocated.DiskGB+disk <= nd.Capacity.DiskGB {
				nd.Allocated.CPUs += c
				nd.Allocated.MemoryMB += mem
				nd.Allocated.DiskGB += disk
				placed++
				break
			}
		}
	}
	if placed != vms {
		tb.Fatalf("only %d of %d VMs fit the benchmark cluster", placed, vms)
	}
	return nodes
}

var sink int64

// BenchmarkPlace measures one placement among 1000 nodes carrying 10 000
// VMs. The state is not changed between iterations: the figure is the cost
// of the decision. "scan" only sums the nodes' free CPU: the floor that any
// placement over this state pays.
func BenchmarkPlace(b *testing.B) {
	nodes := cluster(b, 1000, 10000)
	reqs := []scheduler.Request{
		{Driver: novacron.DriverQEMU, CPUs: 2, MemoryMB: 4096, DiskGB: 20},
		{Driver: novacron.DriverQEMU, CPUs: 4, MemoryMB: 8192, DiskGB: 40},
		{Driver: novacron.DriverContainer, CPUs: 1, MemoryMB: 512, DiskGB: 0},
		{Driver: novacron.DriverQEMU, CPUs: 8, MemoryMB: 16384, DiskGB: 80},
	}

	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var free int64
			for i := range nodes {
				free += int64(nodes[i].Capacity.CPUs - nodes[i].Allocated.CPUs)
			}
			sink += free
		}
	})
	for _, s := range []scheduler.Strategy{scheduler.Binpack, scheduler.Spread} {
		p := scheduler.DefaultPolicy()
		p.Strategy = s
		b.Run(string(s), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d, err := scheduler.Place(nodes, reqs[i%len(reqs)], p)
				if err != nil {
					b.Fatal(err)
				}
				sink += int64(d.Eligible)
				i++
			}
		})
	}
	b.Run("binpack-selector", func(b *testing.B) {
		p := scheduler.DefaultPolicy()
		req := reqs[0]
		req.NodeSelector = map[string]string{"zone": "b"}
		b.ReportAllocs()
		for b.Loop() {
			d, err := scheduler.Place(nodes, req, p)
			if err != nil {
				b.Fatal(err)
			}
			sink += int64(d.Eligible)
		}
	})
	// The failure path formats a reason for each of the 1000 nodes.
	b.Run("no-capacity", func(b *testing.B) {
		p := scheduler.DefaultPolicy()
		req := scheduler.Request{Driver: novacron.DriverQEMU, CPUs: 512, MemoryMB: 1024}
		b.ReportAllocs()
		for b.Loop() {
			_, err := scheduler.Place(nodes, req, p)
			if len(scheduler.Reasons(err)) != len(nodes) {
				b.Fatalf("got %v, want no_capacity for every node", err)
			}
		}
	})
}
