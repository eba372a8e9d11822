package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/novacron/novacron"
)

// SignatureHeader carries the HMAC-SHA256 of a webhook call's body under
// the webhook secret: "sha256=" and the hex digest.
const SignatureHeader = "X-NovaCron-Signature"

// Sign returns the value of SignatureHeader for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// guard refuses addresses inside the network (loopback, private,
// link-local, shared, unspecified, multicast) unless allow-listed.
type guard struct {
	allow []netip.Prefix
}

var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// check returns an error unless a webhook may reach ip.
func (g guard) check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	var kind string
	switch {
	case ip.IsLoopback():
		kind = "loopback"
	case ip.IsPrivate():
		kind = "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		kind = "link-local"
	case ip.IsUnspecified():
		kind = "unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		kind = "multicast"
	case sharedSpace.Contains(ip):
		kind = "shared (carrier-grade NAT)"
	default:
		return nil
	}
	return &blockedError{ip: ip, kind: kind}
}

// blockedError is the guard's refusal of an address.
type blockedError struct {
	ip   netip.Addr
	kind string
}

func (b *blockedError) Error() string {
	return fmt.Sprintf("%s is a %s address (allow it with --alert-webhook-allow)", b.ip, b.kind)
}

// control is the dialer's check of the address it is about to connect
// to, after name resolution: a name that resolves to an internal address
// (DNS rebinding included) is refused here.
func (g guard) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("webhook: dial %q: not an address", host)
	}
	return g.check(ip)
}

// checkURL refuses early a webhook URL whose host is an internal address
// literal or localhost. Names are checked again when called.
func (g guard) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return novacron.FieldError("webhook_url", "is not a URL")
	}
	host := u.Hostname()
	if host == "localhost" || len(host) > len(".localhost") && host[len(host)-len(".localhost"):] == ".localhost" {
		host = "127.0.0.1"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.check(ip); err != nil {
			return novacron.FieldError("webhook_url", "%v", err)
		}
	}
	return nil
}

// delivery is one webhook call to make.
type delivery struct {
	url     string
	body    []byte
	alertID string
}

// notifier calls webhooks from a bounded queue, with retries, on its own
// workers: evaluation never waits for a webhook.
type notifier struct {
	q        chan delivery
	client   *http.Client
	guard    guard
	secret   []byte
	attempts int
	backoff  time.Duration
	log      *slog.Logger
}

func newNotifier(cfg Config, log *slog.Logger) *notifier {
	g := guard{allow: cfg.WebhookAllow}
	dialer := &net.Dialer{Timeout: cfg.WebhookTimeout, Control: g.control}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.WebhookTimeout,
		ResponseHeaderTimeout: cfg.WebhookTimeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       time.Minute,
	}
	return &notifier{
		q:     make(chan delivery, cfg.WebhookQueue),
		guard: g,
		client: &http.Client{Transport: tr, Timeout: cfg.WebhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		secret:   cfg.WebhookSecret,
		attempts: cfg.WebhookAttempts,
		backoff:  cfg.WebhookBackoff,
		log:      log.With("component", "webhook"),
	}
}

// webhookWorkers is how many calls run at once.
const webhookWorkers = 2

func (n *notifier) start(stop <-chan struct{}, wg *sync.WaitGroup) {
	for range webhookWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-stop; cancel() }()
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-n.q:
					n.deliver(ctx, d)
				}
			}
		}()
	}
}

// enqueue queues a call with the alert as its body, or drops it (with a
// log line) when the queue is full.
func (n *notifier) enqueue(rawURL string, a *novacron.Alert) {
	body, err := json.Marshal(a)
	if err != nil {
		n.log.Error("webhook: encode alert", "alert_id", a.ID, "err", err)
		return
	}
	select {
	case n.q <- delivery{url: rawURL, body: body, alertID: a.ID}:
	default:
		n.log.Warn("webhook queue full: call dropped", "alert_id", a.ID, "host", hostOf(rawURL))
	}
}

// hostOf is the host of a webhook URL, which is all the log says of it:
// its path or query may hold a token.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// errPermanent marks a failure that another try would repeat.
var errPermanent = errors.New("permanent")

// deliver makes a call, trying again with growing pauses on network
// errors, 408, 429 and 5xx answers.
func (n *notifier) deliver(ctx context.Context, d delivery) bool {
	wait := n.backoff
	var err error
	for attempt := 1; attempt <= n.attempts; attempt++ {
		if err = n.call(ctx, d); err == nil {
			n.log.Debug("webhook called", "alert_id", d.alertID, "host", hostOf(d.url), "attempt", attempt)
			return true
		}
		if errors.Is(err, errPermanent) || attempt == n.attempts {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
	n.log.Warn("webhook call failed", "alert_id", d.alertID, "host", hostOf(d.url), "err", err)
	return false
}

func (n *notifier) call(ctx context.Context, d delivery) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "NovaCron-Webhook")
	req.Header.Set("X-NovaCron-Event", "alert")
	req.Header.Set(SignatureHeader, Sign(n.secret, d.body))
	resp, err := n.client.Do(req)
	if err != nil {
		var be *blockedError
		if errors.As(err, &be) {
			return fmt.Errorf("%w: %v", errPermanent, be)
		}
		// Only the kind of failure: the URL may hold a token.
		return errors.New(scrubURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return fmt.Errorf("%w: status %d", errPermanent, resp.StatusCode)
}

// scrubURL returns the text of a client error without the URL it names.
func scrubURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}
