package novacron

import "context"

// VMCounter counts VMs without reading them, for metrics. The stores
// implement it beside VMStore.
type VMCounter interface {
	// CountVMsByState returns how many VMs of every tenant are in each
	// state; a state no VM is in is absent.
	CountVMsByState(ctx context.Context) (map[VMState]int, error)
}
