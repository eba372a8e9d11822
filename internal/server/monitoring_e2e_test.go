package server_test

// WS /ws/monitoring through the composition root: the real server with
// fake drivers, real WebSocket clients, events the VM service publishes and
// events published on the server's bus as the metrics and alert services
// do.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/server"
)

// How a stream's client passes its token.
const (
	byHeader = iota
	byQuery
	bySubprotocol
)

// dialMonitoring opens WS /ws/monitoring with query q (without the token).
// On a refusal it returns a nil connection and the API's error reply.
func (h *harness) dialMonitoring(token, q string, how int) (*websocket.Conn, reply) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := url.ParseQuery(q)
	if err != nil {
		h.t.Fatal(err)
	}
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}, Subprotocols: []string{"novacron"}}
	switch {
	case token == "":
	case how == byHeader:
		opts.HTTPHeader.Set("Authorization", "Bearer "+token)
	case how == byQuery:
		v.Set("token", token)
	case how == bySubprotocol:
		opts.Subprotocols = append(opts.Subprotocols, "bearer."+token)
	}
	u := "ws" + strings.TrimPrefix(h.url, "http") + "/ws/monitoring"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err == nil {
		c.SetReadLimit(1 << 20)
		h.t.Cleanup(func() { c.CloseNow() })
		return c, reply{status: http.StatusSwitchingProtocols, header: resp.Header}
	}
	if resp == nil {
		h.t.Fatalf("monitoring: %v", err)
	}
	out := reply{status: resp.StatusCode, header: resp.Header}
	out.raw, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(out.raw, &out.body)
	return nil, out
}

// streamEvent is a message of the stream.
type streamEvent struct {
	Type string          `json:"type"`
	TS   time.Time       `json:"ts"`
	Data json.RawMessage `json:"data"`
}

func (e streamEvent) field(k string) string {
	var m map[string]any
	_ = json.Unmarshal(e.Data, &m)
	s, _ := m[k].(string)
	return s
}

// nextEvent reads the stream's next event.
func nextEvent(t *testing.T, c *websocket.Conn, timeout time.Duration) (streamEvent, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		return streamEvent{}, err
	}
	var e streamEvent
	if typ != websocket.MessageText {
		t.Fatalf("a binary message: %q", b)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Type == "" || e.TS.IsZero() || len(e.Data) == 0 {
		t.Fatalf("a message not {type, ts, data}: %s (%v)", b, err)
	}
	return e, nil
}

// eventsUntil reads events until one is a marker with data want, and
// returns those before it.
func eventsUntil(t *testing.T, c *websocket.Conn, want string) []streamEvent {
	t.Helper()
	var got []streamEvent
	for {
		e, err := nextEvent(t, c, 30*time.Second)
		if err != nil {
			t.Fatalf("waiting for marker %s: %v; got %d events before", want, err, len(got))
		}
		if string(e.Data) == `"`+want+`"` {
			return got
		}
		got = append(got, e)
	}
}

// marker publishes an event only a marker-seeking reader looks for.
func marker(h *harness, typ, tenant, vmID, data string) {
	h.srv.Events().Publish(events.Event{Type: typ, TenantID: tenant, VMID: vmID, Data: data})
}

// waitSubscribers waits until the bus has n subscribers.
func waitSubscribers(t *testing.T, h *harness, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d subscribers", n), func() error {
		if got := h.srv.Events().Subscribers(); got != n {
			return fmt.Errorf("%d subscribers", got)
		}
		return nil
	})
}

// fakeDrivers gives the server fake drivers, and pings so rare that a
// client busy elsewhere on a loaded machine is never dropped for not
// answering one (TestMonitoringKeepAlive tests them).
func fakeDrivers(c *server.Config) {
	c.Drivers = []driver.Driver{fake.New(novacron.DriverProcess), fake.New(novacron.DriverQEMU)}
	c.WSPingInterval = 10 * time.Minute
}

// readAll reads c in the background (answering pings) until it fails, and
// sends that error.
func readAll(c *websocket.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		for {
			_, _, err := c.Read(context.Background())
			if err != nil {
				ch <- err
				return
			}
		}
	}()
	return ch
}

// TestMonitoringStream runs on both stores: the events carry what the
// store reads back.
func TestMonitoringStream(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) { testMonitoringStream(t, db(t)) })
}

func testMonitoringStream(t *testing.T, db string) {
	h := start(t, db, fakeDrivers)
	admin := h.admin()
	tA, tB := h.mkTenant(admin, "acme"), h.mkTenant(admin, "globex")
	_, alice := h.mkUser(admin, "alice", "user", tA)
	_, bob := h.mkUser(admin, "bob", "user", tB)
	_, olga := h.mkUser(admin, "olga", "operator", tB)

	t.Run("refusals before the upgrade", func(t *testing.T) {
		h := h.on(t)
		_, r := h.dialMonitoring("", "", byHeader)
		h.want(r, 401, "unauthorized")
		_, r = h.dialMonitoring("not-a-token", "", byQuery)
		h.want(r, 401, "unauthorized")
		_, r = h.dialMonitoring(alice, "types=vm_state,bogus", byHeader)
		h.want(r, 400, "invalid_request")
		_, r = h.dialMonitoring(alice, "vm_id=00000000-0000-0000-0000-000000000001", byHeader)
		h.want(r, 404, "not_found")
		var ids []string
		for i := range 101 {
			ids = append(ids, fmt.Sprintf("%08d-0000-0000-0000-000000000000", i))
		}
		_, r = h.dialMonitoring(alice, "vm_id="+strings.Join(ids, ","), byHeader)
		h.want(r, 400, "invalid_request")
		r = h.req("GET", "/ws/monitoring", alice, nil)
		h.want(r, 400, "invalid_request")
	})

	// Streams of every kind of caller, each token passed another way.
	ca, r := h.dialMonitoring(alice, "", byQuery)
	if ca == nil {
		t.Fatalf("alice, token in the query: %d %s", r.status, r.raw)
	}
	cb, r := h.dialMonitoring(bob, "", bySubprotocol)
	if cb == nil {
		t.Fatalf("bob, token as a subprotocol: %d %s", r.status, r.raw)
	}
	if p := cb.Subprotocol(); p != "novacron" {
		t.Errorf("subprotocol %q, want novacron", p)
	}
	co, _ := h.dialMonitoring(olga, "", byHeader)
	cadm, _ := h.dialMonitoring(admin, "", byHeader)
	if co == nil || cadm == nil {
		t.Fatal("operator or admin refused")
	}
	if strings.Contains(h.log.String(), alice) {
		t.Error("the log holds a token")
	}
	waitSubscribers(t, h, 4)

	// alice's VM goes through its life; bob (another tenant) must see
	// none of it.
	vm := h.want(h.req("POST", "/api/vm/vms?wait=1", alice, map[string]any{"name": "web", "driver": "qemu",
		"cpus": 1, "memory_mb": 64, "start": true}), 200).str("id")
	h.want(h.req("POST", "/api/vm/vms/"+vm+"/pause?wait=1", alice, nil), 200)
	h.want(h.req("DELETE", "/api/vm/vms/"+vm+"?wait=1", alice, nil), 204)
	marker(h, events.TypeNode, "", "", "end")
	h.srv.Events().Publish(events.Event{Type: events.TypeNode, Operators: true, Data: "end"})
	marker(h, events.TypeAlert, tA, "", "end")
	marker(h, events.TypeAlert, tB, "", "end")

	states := func(evs []streamEvent) (vmStates, ops []string) {
		for _, e := range evs {
			switch e.Type {
			case events.TypeVMState:
				if e.field("id") != vm {
					t.Errorf("vm_state of %s", e.field("id"))
				}
				vmStates = append(vmStates, e.field("state"))
			case events.TypeOperation:
				ops = append(ops, e.field("action")+":"+e.field("status"))
			}
		}
		return
	}
	wantStates := "creating stopped starting running paused deleting deleted"
	wantOps := "create:running create:succeeded pause:running pause:succeeded delete:running delete:succeeded"
	// alice's first marker is her tenant's alert, the admin's the
	// cluster's node event: before it, the VM's events only.
	for _, c := range []struct {
		name string
		c    *websocket.Conn
	}{{"alice", ca}, {"admin", cadm}} {
		evs := eventsUntil(t, c.c, "end")
		s, o := states(evs)
		if got := strings.Join(s, " "); got != wantStates {
			t.Errorf("%s: vm states %q, want %q", c.name, got, wantStates)
		}
		if got := strings.Join(o, " "); got != wantOps {
			t.Errorf("%s: operations %q, want %q", c.name, got, wantOps)
		}
	}
	// bob: nothing of tenant A before his own tenant's marker.
	if evs := eventsUntil(t, cb, "end"); len(evs) != 0 {
		t.Errorf("bob saw %d events of another tenant: first %s %s", len(evs), evs[0].Type, evs[0].Data)
	}
	// olga, an operator of tenant B: the node event (Operators) first, no
	// VM of tenant A, then her tenant's alert.
	if evs := eventsUntil(t, co, "end"); len(evs) != 0 {
		t.Errorf("operator saw %d events before the node marker: first %s", len(evs), evs[0].Data)
	}
	if e, err := nextEvent(t, co, 30*time.Second); err != nil || e.Type != events.TypeAlert || string(e.Data) != `"end"` {
		t.Errorf("operator: after the node marker %v %s %s, want tenant B's alert", err, e.Type, e.Data)
	}

	t.Run("filters", func(t *testing.T) {
		h := h.on(t)
		v1 := h.want(h.req("POST", "/api/vm/vms?wait=1", alice, map[string]any{"name": "one", "driver": "qemu",
			"cpus": 1, "memory_mb": 64}), 200).str("id")
		v2 := h.want(h.req("POST", "/api/vm/vms?wait=1", alice, map[string]any{"name": "two", "driver": "qemu",
			"cpus": 1, "memory_mb": 64}), 200).str("id")
		_, r := h.dialMonitoring(bob, "vm_id="+v1, byHeader)
		h.want(r, 404, "not_found")
		c, r := h.dialMonitoring(alice, "types=operation&vm_id="+v1, byHeader)
		if c == nil {
			t.Fatalf("filtered stream: %d %s", r.status, r.raw)
		}
		waitSubscribers(t, h, 5)
		h.want(h.req("POST", "/api/vm/vms/"+v2+"/start?wait=1", alice, nil), 200)
		h.want(h.req("POST", "/api/vm/vms/"+v1+"/start?wait=1", alice, nil), 200)
		marker(h, events.TypeVMState, tA, v1, "x")
		marker(h, events.TypeOperation, tA, v2, "x")
		marker(h, events.TypeOperation, tA, v1, "end")
		evs := eventsUntil(t, c, "end")
		var got []string
		for _, e := range evs {
			if e.Type != events.TypeOperation || e.field("vm_id") != v1 {
				t.Errorf("the filter let through %s %s", e.Type, e.Data)
			}
			got = append(got, e.field("action")+":"+e.field("status"))
		}
		if g := strings.Join(got, " "); g != "start:running start:succeeded" {
			t.Errorf("filtered operations %q", g)
		}
	})
}

func TestMonitoringTakesNoMessages(t *testing.T) {
	h := start(t, "", fakeDrivers)
	c, _ := h.dialMonitoring(h.admin(), "", byHeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := nextEvent(t, c, 30*time.Second)
	var ce websocket.CloseError
	if !asCloseError(err, &ce) || ce.Code != websocket.StatusUnsupportedData {
		t.Fatalf("after a message from the client: %v, want close 1003", err)
	}
}

// TestMonitoringManyClients runs 100 streams at once, of users of two
// tenants and admins: each gets every event it may see, in order, and
// nothing else.
func TestMonitoringManyClients(t *testing.T) {
	h := start(t, "", fakeDrivers)
	admin := h.admin()
	tA, tB := h.mkTenant(admin, "acme"), h.mkTenant(admin, "globex")
	_, alice := h.mkUser(admin, "alice", "user", tA)
	_, bob := h.mkUser(admin, "bob", "user", tB)
	const clients, burst = 100, 100
	type client struct {
		who string
		c   *websocket.Conn
	}
	cs := make([]client, clients)
	var wg sync.WaitGroup
	for i := range cs {
		who, tok := []string{"alice", "bob", "admin"}[i%3], []string{alice, bob, admin}[i%3]
		wg.Go(func() {
			c, r := h.dialMonitoring(tok, "", i%3)
			if c == nil {
				t.Errorf("client %d: %d %s", i, r.status, r.raw)
				return
			}
			cs[i] = client{who, c}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitSubscribers(t, h, clients)
	vm := h.want(h.req("POST", "/api/vm/vms?wait=1", alice, map[string]any{"name": "web", "driver": "qemu",
		"cpus": 1, "memory_mb": 64, "start": true}), 200).str("id")
	// A burst within the buffer, as a metrics service publishes.
	for i := range burst {
		h.srv.Events().Publish(events.Event{Type: events.TypeMetrics, TenantID: tA, VMID: vm,
			Data: map[string]any{"vm_id": vm, "seq": i}})
	}
	marker(h, events.TypeAlert, tA, "", "end")
	marker(h, events.TypeAlert, tB, "", "end")
	var mu sync.Mutex
	counts := map[string][]int{}
	for _, cl := range cs {
		wg.Go(func() {
			evs := eventsUntil(t, cl.c, "end")
			seq, states := 0, 0
			for _, e := range evs {
				switch e.Type {
				case events.TypeMetrics:
					var d struct{ Seq int }
					_ = json.Unmarshal(e.Data, &d)
					if d.Seq != seq {
						t.Errorf("%s: metrics event %d, want %d", cl.who, d.Seq, seq)
					}
					seq++
				case events.TypeVMState:
					states++
				}
			}
			mu.Lock()
			counts[cl.who] = append(counts[cl.who], len(evs), seq, states)
			mu.Unlock()
		})
	}
	wg.Wait()
	for who, c := range counts {
		for i := 0; i < len(c); i += 3 {
			n, seq, states := c[i], c[i+1], c[i+2]
			switch who {
			case "bob":
				if n != 0 {
					t.Errorf("bob saw %d events of another tenant", n)
				}
			default:
				// creating, stopped, starting, running; create's
				// two operation events.
				if seq != burst || states != 4 || n != burst+4+2 {
					t.Errorf("%s: %d events, %d metrics (want %d), %d states (want 4)", who, n, seq, burst, states)
				}
			}
		}
	}
}

// TestMonitoringSlowClient: a client that takes nothing is dropped with a
// close reason once it is a buffer behind, while the others keep getting
// every event.
func TestMonitoringSlowClient(t *testing.T) {
	h := start(t, "", fakeDrivers)
	admin := h.admin()
	slow := h.dialSmallBuffer(admin)
	var good []*websocket.Conn
	for range 3 {
		c, _ := h.dialMonitoring(admin, "", byHeader)
		good = append(good, c)
	}
	waitSubscribers(t, h, 4)
	// Large events, so that the socket buffers between the server and
	// the slow client fill up, sent in rounds the good clients confirm:
	// they are never behind.
	pad := strings.Repeat("x", 32<<10)
	const rounds, per = 400, 20
	for r := range rounds {
		for i := range per {
			h.srv.Events().Publish(events.Event{Type: events.TypeMetrics, Data: map[string]any{"seq": r*per + i, "pad": pad}})
		}
		for _, c := range good {
			for i := range per {
				e, err := nextEvent(t, c, 30*time.Second)
				if err != nil {
					t.Fatalf("good client, round %d: %v", r, err)
				}
				var d struct{ Seq int }
				_ = json.Unmarshal(e.Data, &d)
				if d.Seq != r*per+i {
					t.Fatalf("good client: event %d, want %d", d.Seq, r*per+i)
				}
			}
		}
		if h.srv.Events().Subscribers() == 3 {
			break
		}
	}
	waitSubscribers(t, h, 3)
	// The slow client now reads what had reached it, then the close.
	var err error
	for err == nil {
		_, err = nextEvent(t, slow, 30*time.Second)
	}
	var ce websocket.CloseError
	if !asCloseError(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "too slow") {
		t.Fatalf("slow client: %v, want close 1008 \"too slow\"", err)
	}
	// The others go on.
	marker(h, events.TypeNode, "", "", "end")
	for _, c := range good {
		if evs := eventsUntil(t, c, "end"); len(evs) != 0 {
			t.Errorf("good client: %d unexpected events", len(evs))
		}
	}
}

// dialSmallBuffer opens a stream whose socket has a small receive buffer,
// so that what it does not read fills it soon.
func (h *harness) dialSmallBuffer(token string) *websocket.Conn {
	h.t.Helper()
	d := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/ws/monitoring", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		h.t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	h.t.Cleanup(func() { c.CloseNow() })
	return c
}

func asCloseError(err error, ce *websocket.CloseError) bool { return errors.As(err, ce) }

// TestMonitoringKeepAlive: the server pings; a client that answers (one
// that reads) stays, one that does not is dropped with a reason.
func TestMonitoringKeepAlive(t *testing.T) {
	h := start(t, "", func(c *server.Config) {
		fakeDrivers(c)
		c.WSPingInterval = 2 * time.Second
	})
	admin := h.admin()
	live, _ := h.dialMonitoring(admin, "", byHeader)
	deaf, _ := h.dialMonitoring(admin, "", byHeader)
	waitSubscribers(t, h, 2)
	// live reads (and so answers pings) in the background.
	got := make(chan error, 1)
	go func() {
		e, err := nextEvent(t, live, 2*time.Minute)
		if err == nil && string(e.Data) != `"end"` {
			err = fmt.Errorf("event %s", e.Data)
		}
		got <- err
	}()
	// deaf answers nothing: the first ping it misses drops it.
	waitSubscribers(t, h, 1)
	time.Sleep(5 * time.Second) // more pings to the live client
	marker(h, events.TypeNode, "", "", "end")
	if err := <-got; err != nil {
		t.Fatalf("a client that answers pings: %v", err)
	}
	_, err := nextEvent(t, deaf, 30*time.Second)
	var ce websocket.CloseError
	if !asCloseError(err, &ce) || ce.Code != websocket.StatusGoingAway || !strings.Contains(ce.Reason, "ping") {
		t.Fatalf("a client that answers no ping: %v, want close 1001 about the ping", err)
	}
}

// TestMonitoringEndsWithItsSession: a logout, or a user moved to another
// role, ends the streams opened with the old rights.
func TestMonitoringEndsWithItsSession(t *testing.T) {
	h := start(t, "", func(c *server.Config) {
		fakeDrivers(c)
		c.WSPingInterval = time.Second
	})
	admin := h.admin()
	ten := h.mkTenant(admin, "acme")
	uid, alice := h.mkUser(admin, "alice", "operator", ten)
	_, bob := h.mkUser(admin, "bob", "user", ten)
	ca, _ := h.dialMonitoring(alice, "", byHeader)
	cb, _ := h.dialMonitoring(bob, "", byHeader)
	ea, eb := readAll(ca), readAll(cb)
	waitSubscribers(t, h, 2)
	h.want(h.req("POST", "/auth/logout", bob, nil), 204)
	h.want(h.req("PUT", "/api/users/"+uid, admin, map[string]any{"role": "user"}), 200)
	for who, ch := range map[string]<-chan error{"logged out": eb, "demoted": ea} {
		var err error
		select {
		case err = <-ch:
		case <-time.After(time.Minute):
			t.Fatalf("%s: the stream goes on", who)
		}
		var ce websocket.CloseError
		if !asCloseError(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
			t.Errorf("%s: %v, want close 1008", who, err)
		}
	}
}
