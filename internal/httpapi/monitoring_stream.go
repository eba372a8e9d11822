package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
)

// The monitoring stream, WS /ws/monitoring: one text message per event the
// caller may see, {"type","ts","data"}, filtered by ?types= and ?vm_id=.
// The client sends nothing (a message from it ends the stream with 1003).
const (
	// MonitoringBuffer is how many events a client may be behind before it
	// is dropped (close 1008, "too slow").
	MonitoringBuffer = 128
	// maxStreamVMs bounds the VMs one stream may follow by ?vm_id=.
	maxStreamVMs = 100
	// monitoringWriteTimeout bounds one message's write to a client that
	// takes nothing at all: its connection is then closed without a close
	// frame. A client that reads, but too slowly, falls a buffer behind
	// and is dropped with one.
	monitoringWriteTimeout = 30 * time.Second
	// monitoringReadLimit bounds a message from the client, which should
	// send none.
	monitoringReadLimit = 1 << 10
)

// streamTypes are the event types a stream may ask for.
var streamTypes = []string{events.TypeMetrics, events.TypeVMState, events.TypeAlert,
	events.TypeMigration, events.TypeNode, events.TypeOperation}

// queryList reads a parameter given repeated or comma-separated, without
// repeats. It stops reading after max+1 values: more than max is the
// caller's error.
func queryList(r *http.Request, name string, max int) []string {
	var out []string
	for _, v := range r.URL.Query()[name] {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
				if len(out) > max {
					return out
				}
			}
		}
	}
	return out
}

// monitoringStream opens the monitoring stream, before the upgrade: an
// unknown type is 400, a VM the caller cannot see 404.
func (a *API) monitoringStream(r *http.Request) (wsSession, error) {
	st := stateOf(r)
	if a.cfg.Events == nil {
		return nil, novacron.Errorf(novacron.EUnavailable, "this server has no event stream")
	}
	types := queryList(r, "types", len(streamTypes))
	if len(types) > len(streamTypes) {
		return nil, novacron.FieldError("types", "at most %d types", len(streamTypes))
	}
	for _, t := range types {
		if !slices.Contains(streamTypes, t) {
			return nil, novacron.FieldError("types", "unknown type %q: the types are %s", truncate(t, 32), strings.Join(streamTypes, ", "))
		}
	}
	vmIDs := queryList(r, "vm_id", maxStreamVMs)
	if len(vmIDs) > maxStreamVMs {
		return nil, novacron.FieldError("vm_id", "at most %d VMs", maxStreamVMs)
	}
	for i, id := range vmIDs {
		// Another tenant's VM, or none, is 404; the id the store answers
		// with is the canonical one events carry.
		v, err := a.vms.Get(r.Context(), st.actor, id)
		if err != nil {
			return nil, err
		}
		vmIDs[i] = v.ID
	}
	actor := st.actor
	filter := func(e events.Event) bool {
		if len(types) > 0 && !slices.Contains(types, e.Type) {
			return false
		}
		if len(vmIDs) > 0 && !e.About(vmIDs) {
			return false
		}
		return e.VisibleTo(actor)
	}
	sub := a.cfg.Events.Subscribe(MonitoringBuffer, filter)
	return &monitoringSession{a: a, sub: sub, actor: actor, requestID: st.id, user: actor.Username}, nil
}

// monitoringSession writes a subscription's events to a WebSocket.
type monitoringSession struct {
	a         *API
	sub       *events.Subscription
	actor     *novacron.Actor
	requestID string
	user      string
}

// stillValid reports why the stream's caller may no longer see what it
// was opened for, or "": its session was revoked or expired (a logout), or
// its user is gone or has another role or tenant. A store that cannot
// answer keeps the stream.
func (s *monitoringSession) stillValid(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sess, err := s.a.store.GetSession(ctx, s.actor.SessionID)
	if novacron.IsCode(err, novacron.ENotFound) || err == nil && !sess.Active(s.a.now()) {
		return "the session has ended"
	}
	if err != nil {
		return ""
	}
	u, err := s.a.store.GetUser(ctx, novacron.AllTenants, s.actor.UserID)
	if novacron.IsCode(err, novacron.ENotFound) || err == nil && (u.Role != s.actor.Role || u.TenantID != s.actor.TenantID) {
		return "the user's role or tenant changed"
	}
	return ""
}

func (s *monitoringSession) abort() { s.sub.Close() }

// serve writes events until the client goes, falls behind by more than
// its buffer (1008 "too slow"), answers no ping, its session ends or its
// user changes (1008, checked at every ping), or the server shuts down
// (1001).
func (s *monitoringSession) serve(ctx context.Context, c *websocket.Conn, stop <-chan struct{}) {
	defer s.sub.Close()
	start := time.Now()
	c.SetReadLimit(monitoringReadLimit)
	ended := make(chan struct{})
	var (
		code   websocket.StatusCode
		reason string
		sent   int
	)
	type closing struct {
		code   websocket.StatusCode
		reason string
	}
	endCh := make(chan closing, 2) // the reader's and the pinger's
	end := func(sc websocket.StatusCode, why string) {
		select {
		case endCh <- closing{sc, why}:
		default:
		}
	}
	// The client's side: nothing is expected but control frames (pongs,
	// its close), which Read handles.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_, _, err := c.Read(ctx)
		if err == nil {
			end(websocket.StatusUnsupportedData, "this stream takes no messages")
			return
		}
		end(websocket.CloseStatus(err), "")
	}()
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		keepAliveEvery(ctx, c, s.a.pingInterval(), ended, end)
	}()

	recheck := time.NewTicker(s.a.pingInterval())
	defer recheck.Stop()
loop:
	for {
		// Falling behind ends the stream at once, whatever is buffered.
		select {
		case <-s.sub.Dropped:
			code, reason = websocket.StatusPolicyViolation, "too slow: the client fell behind the events"
			break loop
		default:
		}
		select {
		case <-recheck.C:
			if why := s.stillValid(ctx); why != "" {
				code, reason = websocket.StatusPolicyViolation, why
				break loop
			}
		case e := <-s.sub.C:
			b, err := e.JSON()
			if err != nil {
				s.a.log.Error("monitoring: encode an event", "request_id", s.requestID, "type", e.Type, "err", err)
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, monitoringWriteTimeout)
			err = c.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				code, reason = websocket.StatusPolicyViolation, "the client did not take the events"
				break loop
			}
			sent++
		case <-s.sub.Dropped:
			code, reason = websocket.StatusPolicyViolation, "too slow: the client fell behind the events"
			break loop
		case x := <-endCh:
			code, reason = x.code, x.reason
			break loop
		case <-stop:
			code, reason = websocket.StatusGoingAway, "the server is shutting down"
			break loop
		}
	}
	close(ended)
	s.sub.Close()
	if code == -1 || code == websocket.StatusNoStatusRcvd {
		// The client went away without a close frame, or sent one
		// without a code.
		code = websocket.StatusNormalClosure
	}
	if err := c.Close(code, closeReason(reason)); err != nil && !errors.Is(err, context.Canceled) {
		s.a.log.Debug("monitoring: close", "request_id", s.requestID, "err", err)
	}
	<-readDone
	<-pingDone
	s.a.log.Info("monitoring stream closed", "request_id", s.requestID, "user", s.user,
		"duration", time.Since(start).Round(time.Millisecond), "events", sent,
		"close_code", int(code), "close_reason", reason)
}
