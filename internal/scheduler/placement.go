// Package scheduler chooses the node a new VM runs on. Place is a pure
// function of a snapshot of the cluster: it filters the nodes (status, drain,
// driver, node_selector labels, free CPU, memory and disk under the
// configured overcommit ratios) and scores the survivors by the chosen
// strategy. It does no I/O, so the replica that receives a request can call
// it synchronously and then commit the decision in a transaction that checks
// the node's capacity again.
//
// When no node fits, Place returns a novacron.ENoCapacity error whose details
// hold the first reason each node was rejected:
//
//	{"nodes": {"<node id>": "<reason>", ...}}
package scheduler

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/novacron/novacron"
)

// Strategy is how Place ranks the nodes that fit.
type Strategy string

// The strategies.
const (
	// Binpack prefers the node that is fullest after placement, keeping
	// other nodes empty for large VMs and for maintenance.
	Binpack Strategy = "binpack"
	// Spread prefers the node that is emptiest after placement, spreading
	// load and the blast radius of a node failure.
	Spread Strategy = "spread"
)

// MaxOvercommit bounds every overcommit ratio: beyond it a ratio is a
// mistake, not a policy.
const MaxOvercommit = 64

// Sanity bounds of a request. The API enforces tighter limits; these keep
// the arithmetic here exact whatever the caller passes.
const (
	MaxCPUs     = 1 << 20
	MaxMemoryMB = 1 << 40
	MaxDiskGB   = 1 << 40
	MaxSelector = 64
)

// DetailsKey is the key of the per-node reasons in a no_capacity error's
// details.
const DetailsKey = "nodes"

// Resources is an amount of CPU, memory and disk.
type Resources struct {
	CPUs     int
	MemoryMB int64
	DiskGB   int64
}

// Node is what placement needs to know of a node. Status is one of
// novacron.NodeOnline, NodeOffline and NodeMaintenance; Allocated is the sum
// of the resources of the VMs already placed on it. IDs are unique.
type Node struct {
	ID        string
	Name      string
	Status    string
	Drained   bool
	Labels    map[string]string
	Drivers   []string
	Capacity  Resources
	Allocated Resources
}

// Request is the VM to place. NodeSelector labels must all be present on the
// node with equal values. PinNodeID, set by an admin, names the only node
// that may be chosen; it must still pass every filter.
type Request struct {
	Driver       string
	CPUs         int
	MemoryMB     int64
	DiskGB       int64
	NodeSelector map[string]string
	PinNodeID    string
}

// Policy is the cluster's placement configuration. An overcommit ratio of 1
// allows no overcommit; 4 lets the VMs on a node ask for four times its
// capacity of that resource.
type Policy struct {
	Strategy         Strategy
	CPUOvercommit    float64
	MemoryOvercommit float64
	DiskOvercommit   float64
}

// DefaultPolicy is binpack without overcommit.
func DefaultPolicy() Policy {
	return Policy{Strategy: Binpack, CPUOvercommit: 1, MemoryOvercommit: 1, DiskOvercommit: 1}
}

// Validate checks the strategy and that every ratio is between 1 and
// MaxOvercommit. Its errors are for the operator who configured the policy.
func (p Policy) Validate() error {
	if p.Strategy != Binpack && p.Strategy != Spread {
		return fmt.Errorf("placement: strategy %q: must be binpack or spread", p.Strategy)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"cpu", p.CPUOvercommit}, {"memory", p.MemoryOvercommit}, {"disk", p.DiskOvercommit}} {
		// Written so that NaN fails too.
		if !(r.v >= 1 && r.v <= MaxOvercommit) {
			return fmt.Errorf("placement: %s overcommit %v: must be between 1 and %d", r.name, r.v, MaxOvercommit)
		}
	}
	return nil
}

var selectorKeyRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,62}$`)

// Validate checks a request; its errors are invalid_request errors naming
// the field as the API spells it.
func (r Request) Validate() error {
	if r.Driver == "" {
		return novacron.FieldError("driver", "is required")
	}
	if len(r.Driver) > 63 {
		return novacron.FieldError("driver", "must be at most 63 characters")
	}
	if r.CPUs < 1 || r.CPUs > MaxCPUs {
		return novacron.FieldError("cpus", "must be between 1 and %d", MaxCPUs)
	}
	if r.MemoryMB < 1 || r.MemoryMB > MaxMemoryMB {
		return novacron.FieldError("memory_mb", "must be between 1 and %d", int64(MaxMemoryMB))
	}
	if r.DiskGB < 0 || r.DiskGB > MaxDiskGB {
		return novacron.FieldError("disk_gb", "must be between 0 and %d", int64(MaxDiskGB))
	}
	if len(r.NodeSelector) > MaxSelector {
		return novacron.FieldError("node_selector", "at most %d labels", MaxSelector)
	}
	for k, v := range r.NodeSelector {
		if !selectorKeyRE.MatchString(k) {
			return novacron.FieldError("node_selector", "key %q must be 1-63 characters of letters, digits, '.', '_', '/', '-', starting with a letter or digit", k)
		}
		if len(v) > 255 {
			return novacron.FieldError("node_selector."+k, "must be at most 255 characters")
		}
	}
	if len(r.PinNodeID) > 255 {
		return novacron.FieldError("node_id", "must be at most 255 characters")
	}
	return nil
}

// Decision is where the VM goes. Score is the node's dominant resource share
// after placement (0 to 1, the largest of its CPU, memory and disk shares of
// overcommitted capacity); Eligible is how many nodes passed the filters.
type Decision struct {
	NodeID   string
	Score    float64
	Eligible int
	Pinned   bool
}

// Place chooses a node for req. It is deterministic: the same nodes in any
// order give the same decision, equal scores going to the lowest node ID.
//
// Errors: invalid_request (naming the field) for a bad request; not_found
// when the pinned node does not exist; no_capacity, with the reason per node
// in details under DetailsKey, when no node (or not the pinned one) fits.
// An invalid policy is a configuration error and has no code.
func Place(nodes []Node, req Request, p Policy) (Decision, error) {
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	if err := req.Validate(); err != nil {
		return Decision{}, err
	}
	f := newFilter(req, p)

	if req.PinNodeID != "" {
		for i := range nodes {
			n := &nodes[i]
			if n.ID != req.PinNodeID {
				continue
			}
			if rej := f.check(n); rej.kind != fits {
				reason := f.reason(n, rej)
				return Decision{}, &novacron.Error{Code: novacron.ENoCapacity,
					Message: fmt.Sprintf("pinned node %s cannot take the VM: %s", n.ID, reason),
					Details: map[string]any{DetailsKey: map[string]string{n.ID: reason}}}
			}
			return Decision{NodeID: n.ID, Score: f.share(n), Eligible: 1, Pinned: true}, nil
		}
		return Decision{}, &novacron.Error{Code: novacron.ENotFound,
			Message: fmt.Sprintf("node_id: node %s does not exist", req.PinNodeID),
			Details: map[string]any{"field": "node_id"}}
	}

	best := -1
	var bestScore float64
	eligible := 0
	for i := range nodes {
		n := &nodes[i]
		if f.check(n).kind != fits {
			continue
		}
		eligible++
		s := f.share(n)
		if best < 0 || f.better(s, n.ID, bestScore, nodes[best].ID) {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return Decision{}, f.noCapacity(nodes)
	}
	return Decision{NodeID: nodes[best].ID, Score: bestScore, Eligible: eligible}, nil
}

// Reasons returns the per-node reasons of a no_capacity error from Place,
// or nil for any other error.
func Reasons(err error) map[string]string {
	var e *novacron.Error
	if !errors.As(err, &e) || e.Code != novacron.ENoCapacity {
		return nil
	}
	m, _ := e.Details[DetailsKey].(map[string]string)
	return m
}

// rejectKind is why a node was filtered out, in filter order.
type rejectKind uint8

const (
	fits rejectKind = iota
	offline
	maintenance
	badStatus
	drained
	noDriver
	selectorMismatch
	noCPU
	noMemory
	noDisk
)

// rejection is a filter's verdict, kept small and unformatted so the common
// path allocates nothing; reason turns it into text only when one is shown.
type rejection struct {
	kind rejectKind
	key  string // the first selector key that does not match
}

// filter holds what Place computes once per call.
type filter struct {
	req Request
	p   Policy
	sel []label // node_selector sorted by key, so the reported mismatch does not depend on map order
}

type label struct{ key, value string }

func newFilter(req Request, p Policy) filter {
	f := filter{req: req, p: p}
	if len(req.NodeSelector) > 0 {
		f.sel = make([]label, 0, len(req.NodeSelector))
		for k, v := range req.NodeSelector {
			f.sel = append(f.sel, label{k, v})
		}
		slices.SortFunc(f.sel, func(a, b label) int { return strings.Compare(a.key, b.key) })
	}
	return f
}

// check applies the filters in order, cheapest and most lasting first, and
// returns the first that rejects n.
func (f *filter) check(n *Node) rejection {
	switch n.Status {
	case novacron.NodeOnline:
	case novacron.NodeOffline:
		return rejection{kind: offline}
	case novacron.NodeMaintenance:
		return rejection{kind: maintenance}
	default:
		return rejection{kind: badStatus}
	}
	if n.Drained {
		return rejection{kind: drained}
	}
	if !slices.Contains(n.Drivers, f.req.Driver) {
		return rejection{kind: noDriver}
	}
	for _, l := range f.sel {
		if v, ok := n.Labels[l.key]; !ok || v != l.value {
			return rejection{kind: selectorMismatch, key: l.key}
		}
	}
	if int64(n.Allocated.CPUs)+int64(f.req.CPUs) > effective(int64(n.Capacity.CPUs), f.p.CPUOvercommit) {
		return rejection{kind: noCPU}
	}
	if n.Allocated.MemoryMB+f.req.MemoryMB > effective(n.Capacity.MemoryMB, f.p.MemoryOvercommit) {
		return rejection{kind: noMemory}
	}
	if f.req.DiskGB > 0 && n.Allocated.DiskGB+f.req.DiskGB > effective(n.Capacity.DiskGB, f.p.DiskOvercommit) {
		return rejection{kind: noDisk}
	}
	return rejection{kind: fits}
}

// effective is a capacity under an overcommit ratio, rounded down.
func effective(capacity int64, ratio float64) int64 {
	if capacity <= 0 {
		return 0
	}
	return int64(math.Floor(float64(capacity) * ratio))
}

// share is n's dominant resource share once the request is on it. A resource
// the node reports none of (disk on a diskless node, asked for 0) does not
// count.
func (f *filter) share(n *Node) float64 {
	s := 0.0
	add := func(alloc, asked, capacity int64, ratio float64) {
		if c := effective(capacity, ratio); c > 0 {
			s = max(s, float64(alloc+asked)/float64(c))
		}
	}
	add(int64(n.Allocated.CPUs), int64(f.req.CPUs), int64(n.Capacity.CPUs), f.p.CPUOvercommit)
	add(n.Allocated.MemoryMB, f.req.MemoryMB, n.Capacity.MemoryMB, f.p.MemoryOvercommit)
	add(n.Allocated.DiskGB, f.req.DiskGB, n.Capacity.DiskGB, f.p.DiskOvercommit)
	return s
}

// better reports whether a node with score s and id beats the best so far.
func (f *filter) better(s float64, id string, bestS float64, bestID string) bool {
	if s != bestS {
		if f.p.Strategy == Spread {
			return s < bestS
		}
		return s > bestS
	}
	return id < bestID
}

// noCapacity builds the error for a request no node can take, formatting the
// reason of every node.
func (f *filter) noCapacity(nodes []Node) error {
	reasons := make(map[string]string, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		reasons[n.ID] = f.reason(n, f.check(n))
	}
	msg := fmt.Sprintf("no node can take a %d CPU, %d MB, %d GB %s VM", f.req.CPUs, f.req.MemoryMB, f.req.DiskGB, f.req.Driver)
	switch len(nodes) {
	case 0:
		msg += ": there are no nodes"
	case 1:
		msg += ": the only node is rejected (reason in details)"
	default:
		msg += fmt.Sprintf(": all %d nodes are rejected (reasons in details)", len(nodes))
	}
	return &novacron.Error{Code: novacron.ENoCapacity, Message: msg,
		Details: map[string]any{DetailsKey: reasons}}
}

// reason is the text of a rejection, as shown to the client.
func (f *filter) reason(n *Node, rej rejection) string {
	switch rej.kind {
	case offline:
		return "offline"
	case maintenance:
		return "in maintenance"
	case badStatus:
		return fmt.Sprintf("status %q is not online", n.Status)
	case drained:
		return "drained"
	case noDriver:
		return "no " + f.req.Driver + " driver"
	case selectorMismatch:
		want := f.req.NodeSelector[rej.key]
		if v, ok := n.Labels[rej.key]; ok {
			return fmt.Sprintf("labels do not match node_selector: %s is %q, %q asked", rej.key, v, want)
		}
		return fmt.Sprintf("labels do not match node_selector: no label %s, %q asked", rej.key, want)
	case noCPU:
		return shortage("CPU", "", int64(n.Allocated.CPUs), int64(n.Capacity.CPUs), int64(f.req.CPUs), f.p.CPUOvercommit)
	case noMemory:
		return shortage("memory", " MB", n.Allocated.MemoryMB, n.Capacity.MemoryMB, f.req.MemoryMB, f.p.MemoryOvercommit)
	case noDisk:
		return shortage("disk", " GB", n.Allocated.DiskGB, n.Capacity.DiskGB, f.req.DiskGB, f.p.DiskOvercommit)
	}
	return "fits"
}

// shortage formats "not enough CPU: 2 free of 8 (overcommit 1.0), 4 asked";
// under overcommit the total is the overcommitted one and the physical
// capacity is shown beside the ratio.
func shortage(what, unit string, alloc, capacity, asked int64, ratio float64) string {
	eff := effective(capacity, ratio)
	free := max(eff-alloc, 0)
	r := strconv.FormatFloat(ratio, 'f', -1, 64)
	if ratio == math.Trunc(ratio) {
		r += ".0"
	}
	of := fmt.Sprintf("%d%s (overcommit %s)", eff, unit, r)
	if ratio != 1 {
		of = fmt.Sprintf("%d%s (%d%s × overcommit %s)", eff, unit, capacity, unit, r)
	}
	return fmt.Sprintf("not enough %s: %d%s free of %s, %d%s asked", what, free, unit, of, asked, unit)
}
