package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func testNodeUpsert(t *testing.T, s Store) {
	c := ctx(t)
	seen := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("X", 3600))
	caps := json.RawMessage(`{"kvm": true, "drivers": ["qemu","container"]}`)
	n := &novacron.Node{Name: "node1", Address: "10.0.0.1:8443", Status: novacron.NodeOnline, Capabilities: caps,
		Resources: json.RawMessage(`{"cpus":8,"memory_mb":16384}`), Labels: map[string]string{"zone": "a"}, LastSeen: seen}
	before := time.Now()
	noErr(t, s.UpsertNode(c, n), "UpsertNode")
	wantID(t, n.ID)
	wantStoreTime(t, "CreatedAt", n.CreatedAt, before, time.Now())
	if !n.UpdatedAt.Equal(n.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", n.UpdatedAt, n.CreatedAt)
	}
	if want := time.Date(2025, 3, 4, 4, 6, 7, 891234000, time.UTC); n.LastSeen != want {
		t.Errorf("LastSeen = %v, want %v", n.LastSeen, want)
	}
	jsonEqual(t, "Capabilities", n.Capabilities, caps)
	jsonEqual(t, "Resources", n.Resources, []byte(`{"memory_mb": 16384, "cpus": 8}`))
	want := &novacron.Node{ID: n.ID, Name: "node1", Address: "10.0.0.1:8443", Status: novacron.NodeOnline,
		Capabilities: n.Capabilities, Resources: n.Resources, Labels: map[string]string{"zone": "a"},
		LastSeen: n.LastSeen, CreatedAt: n.CreatedAt, UpdatedAt: n.CreatedAt}
	wantEqual(t, "upserted node", n, want)
	got, err := s.GetNode(c, n.ID)
	noErr(t, err, "GetNode")
	wantEqual(t, "GetNode", got, want)
	time.Sleep(2 * time.Millisecond)

	// The same name updates the node; a zero LastSeen keeps the stored
	// one and a given id is not used.
	upd := &novacron.Node{ID: missingID, Name: "node1", Address: "10.0.0.9:8443", Status: novacron.NodeMaintenance}
	noErr(t, s.UpsertNode(c, upd), "UpsertNode again")
	if upd.ID != n.ID || !upd.CreatedAt.Equal(n.CreatedAt) || !upd.UpdatedAt.After(n.UpdatedAt) || !upd.LastSeen.Equal(n.LastSeen) {
		t.Errorf("updated node = %+v, want id %s, created %v, last seen %v", upd, n.ID, n.CreatedAt, n.LastSeen)
	}
	jsonEqual(t, "Capabilities after update", upd.Capabilities, []byte(`{}`))
	if upd.Address != "10.0.0.9:8443" || upd.Status != novacron.NodeMaintenance || len(upd.Labels) != 0 || upd.Labels == nil {
		t.Errorf("updated node = %+v", upd)
	}
	got, err = s.GetNode(c, n.ID)
	noErr(t, err, "GetNode")
	wantEqual(t, "GetNode after update", got, upd)
	_, err = s.GetNode(c, missingID)
	wantCode(t, err, novacron.ENotFound)

	later := seen.Add(time.Hour)
	upd.LastSeen = later
	noErr(t, s.UpsertNode(c, upd), "UpsertNode last seen")
	if !upd.LastSeen.Equal(later.Truncate(time.Microsecond)) {
		t.Errorf("LastSeen = %v, want %v", upd.LastSeen, later)
	}

	// A node never seen has a zero LastSeen; a chosen id is kept.
	fresh := &novacron.Node{ID: "0189ABCD-0000-7000-8000-0000000000F1", Name: "node2", Status: novacron.NodeOffline}
	noErr(t, s.UpsertNode(c, fresh), "UpsertNode fresh")
	if fresh.ID != "0189abcd-0000-7000-8000-0000000000f1" || !fresh.LastSeen.IsZero() {
		t.Errorf("fresh node = %+v", fresh)
	}
	err = s.UpsertNode(c, &novacron.Node{ID: n.ID, Name: "node3", Status: novacron.NodeOnline})
	wantMessage(t, err, novacron.EConflict, "node id already exists")

	for name, bad := range map[string]*novacron.Node{
		"no name":      {Status: novacron.NodeOnline},
		"no status":    {Name: "x"},
		"bad status":   {Name: "x", Status: "up"},
		"bad caps":     {Name: "x", Status: novacron.NodeOnline, Capabilities: json.RawMessage(`{`)},
		"bad res":      {Name: "x", Status: novacron.NodeOnline, Resources: json.RawMessage(`nope`)},
		"malformed id": {ID: "node-x", Name: "x", Status: novacron.NodeOnline},
		"nil":          nil,
	} {
		if err := s.UpsertNode(c, bad); !novacron.IsCode(err, novacron.EInvalid) {
			t.Errorf("%s: UpsertNode = %v, want %s", name, err, novacron.EInvalid)
		}
	}
	nodes, _, err := s.ListNodes(c, novacron.Page{})
	noErr(t, err, "ListNodes")
	if len(nodes) != 2 {
		t.Errorf("%d nodes, want 2", len(nodes))
	}
}

func testNodeList(t *testing.T, s Store) {
	c := ctx(t)
	var want []string
	for i := range 5 {
		want = append(want, mustNode(t, s, string(rune('e'-i))+"-node", novacron.NodeOnline).ID)
	}
	list := func(limit int) func(string) ([]*novacron.Node, string, error) {
		return func(cursor string) ([]*novacron.Node, string, error) {
			return s.ListNodes(c, novacron.Page{Limit: limit, Cursor: cursor})
		}
	}
	wantEqual(t, "limit 2", collect(t, 2, 3, list(2), nodeID), want)
	wantEqual(t, "limit 5", collect(t, 5, 1, list(5), nodeID), want)
	wantEqual(t, "limit 0", collect(t, 50, 1, list(0), nodeID), want)
	got, _, err := s.ListNodes(c, novacron.Page{Limit: 1})
	noErr(t, err, "ListNodes")
	n, err := s.GetNode(c, want[0])
	noErr(t, err, "GetNode")
	wantEqual(t, "first node", got, []*novacron.Node{n})
	for _, bad := range []string{"!!", missingID} {
		_, _, err := s.ListNodes(c, novacron.Page{Cursor: bad})
		wantCode(t, err, novacron.EInvalid)
	}
}
