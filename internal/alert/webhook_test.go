package alert

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

// hookServer records the calls it gets and answers each with the next
// status of its list (200 once the list is used up).
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	calls    []call
	got      chan call
}

type call struct {
	body []byte
	hdr  http.Header
}

func newHookServer(t *testing.T, statuses ...int) *hookServer {
	h := &hookServer{statuses: statuses, got: make(chan call, 100)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := call{body: b, hdr: r.Header.Clone()}
		h.mu.Lock()
		h.calls = append(h.calls, c)
		status := 200
		if len(h.statuses) > 0 {
			status, h.statuses = h.statuses[0], h.statuses[1:]
		}
		h.mu.Unlock()
		h.got <- c
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

func testNotifier(allow ...string) *notifier {
	cfg := Config{WebhookSecret: []byte("s3cret"), WebhookBackoff: time.Millisecond, WebhookAttempts: 4,
		WebhookTimeout: 10 * time.Second}
	for _, a := range allow {
		cfg.WebhookAllow = append(cfg.WebhookAllow, netip.MustParsePrefix(a))
	}
	cfg.defaults()
	return newNotifier(cfg, slog.New(slog.DiscardHandler))
}

func TestWebhookSignedAndRetried(t *testing.T) {
	h := newHookServer(t, 500, 503)
	n := testNotifier("127.0.0.0/8")
	a := &novacron.Alert{ID: "a1", Name: "cpu", Status: novacron.AlertFiring}
	body, _ := json.Marshal(a)
	if !n.deliver(context.Background(), delivery{url: h.URL + "/hook?token=x", body: body, alertID: "a1"}) {
		t.Fatal("not delivered")
	}
	if h.count() != 3 {
		t.Fatalf("%d calls, want 3 (two retries)", h.count())
	}
	c := h.calls[2]
	if got, want := c.hdr.Get(SignatureHeader), Sign([]byte("s3cret"), c.body); got != want || len(got) != len("sha256=")+64 {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if Sign([]byte("other"), c.body) == c.hdr.Get(SignatureHeader) {
		t.Fatal("the signature does not depend on the secret")
	}
	var back novacron.Alert
	if err := json.Unmarshal(c.body, &back); err != nil || back.ID != "a1" || c.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("body %s, %v", c.body, err)
	}
}

func TestWebhookPermanentFailure(t *testing.T) {
	h := newHookServer(t, 404, 404, 404)
	n := testNotifier("127.0.0.1/32")
	if n.deliver(context.Background(), delivery{url: h.URL, body: []byte(`{}`)}) {
		t.Fatal("a 404 counted as delivered")
	}
	if h.count() != 1 {
		t.Fatalf("%d calls of a 404, want 1", h.count())
	}
	h2 := newHookServer(t, 500, 500, 500, 500, 500)
	if n.deliver(context.Background(), delivery{url: h2.URL, body: []byte(`{}`)}) {
		t.Fatal("delivered")
	}
	if h2.count() != 4 {
		t.Fatalf("%d calls, want the 4 attempts", h2.count())
	}
}

// TestWebhookGuard: internal addresses are refused where the connection
// is made, whatever the URL says: a name that resolves to loopback too.
func TestWebhookGuard(t *testing.T) {
	h := newHookServer(t)
	u, _ := url.Parse(h.URL)
	n := testNotifier()
	for _, target := range []string{h.URL, "http://localhost:" + u.Port() + "/"} {
		if n.deliver(context.Background(), delivery{url: target, body: []byte(`{}`)}) {
			t.Errorf("%s: delivered to loopback", target)
		}
	}
	if h.count() != 0 {
		t.Fatalf("%d calls reached a loopback server", h.count())
	}
	// A redirect is not followed (it would be a way around the check of
	// the first address).
	redir := httptest.NewServer(http.RedirectHandler(h.URL, http.StatusFound))
	defer redir.Close()
	n = testNotifier("127.0.0.1/32")
	if n.deliver(context.Background(), delivery{url: redir.URL, body: []byte(`{}`)}) || h.count() != 0 {
		t.Fatal("a redirect was followed")
	}

	g := guard{allow: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	for addr, ok := range map[string]bool{
		"127.0.0.1": false, "::1": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "224.0.0.1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"10.9.1.2": true, "93.184.216.34": true, "2606:4700::1111": true,
	} {
		err := g.check(netip.MustParseAddr(addr))
		if (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", addr, err, ok)
		}
	}
}

func TestWebhookQueueFull(t *testing.T) {
	n := testNotifier()
	n.q = make(chan delivery, 1)
	done := make(chan struct{})
	go func() {
		a := &novacron.Alert{ID: "x"}
		n.enqueue("https://example.com/", a)
		n.enqueue("https://example.com/", a)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("enqueue blocked on a full queue")
	}
	if len(n.q) != 1 {
		t.Fatalf("queue holds %d", len(n.q))
	}
}

// TestEngineRunning runs the engine's goroutines: samples handed to
// Observe fire a rule whose webhook is called, signed, with the alert.
func TestEngineRunning(t *testing.T) {
	h := newHookServer(t)
	f := newFixture(t, func(c *Config) {
		c.Now = time.Now
		c.WebhookAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.WebhookSecret = []byte("k")
		c.ResolveAfter = time.Nanosecond
	})
	f.rule(f.admin, `{"name":"hot host","metric":"load_average_1","comparator":">","threshold":4,"webhook_url":"`+h.URL+`/x"}`)
	if err := f.e.Start(f.ctx); err != nil {
		t.Fatal(err)
	}
	defer f.e.Close()
	f.e.Observe([]novacron.HostSample{{NodeID: f.node.ID, HostPoint: novacron.HostPoint{LoadAverage1: pf(9)}}}, nil)
	_, a := f.event()
	if a.Name != "hot host" || a.Status != novacron.AlertFiring {
		t.Fatalf("fired %+v", a)
	}
	select {
	case c := <-h.got:
		var got novacron.Alert
		if err := json.Unmarshal(c.body, &got); err != nil || got.ID != a.ID || got.Status != novacron.AlertFiring {
			t.Fatalf("webhook body %s", c.body)
		}
		if c.hdr.Get(SignatureHeader) != Sign([]byte("k"), c.body) {
			t.Fatal("bad signature")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("webhook not called")
	}
	// Clear twice (the second a little later): resolved, and called again.
	for range 3 {
		f.e.Observe([]novacron.HostSample{{NodeID: f.node.ID, HostPoint: novacron.HostPoint{LoadAverage1: pf(1)}}}, nil)
	}
	_, r := f.event()
	if r.ID != a.ID || r.Status != novacron.AlertResolved {
		t.Fatalf("resolved %+v", r)
	}
	select {
	case c := <-h.got:
		var got novacron.Alert
		if err := json.Unmarshal(c.body, &got); err != nil || got.ID != a.ID || got.Status != novacron.AlertResolved {
			t.Fatalf("webhook body %s", c.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("webhook not called on resolution")
	}
	f.e.Close()
}
