package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/vm"
)

// Waiting for an operation: ?wait=1 blocks up to ?timeout= (default 60s,
// at most 300s). Pause and resume are waited for briefly even without it,
// so their answer shows the final state.
const (
	defaultWait = 60 * time.Second
	maxWait     = 300 * time.Second
	fastWait    = 5 * time.Second
)

func (a *API) listVMs(r *http.Request) (any, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := novacron.VMFilter{Page: page, State: novacron.VMState(q.Get("state")), NodeID: q.Get("node_id"),
		Driver: q.Get("driver"), Name: q.Get("name")}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, novacron.FieldError("label", "must be key=value")
		}
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		f.Labels[k] = v
	}
	vms, next, err := a.vms.List(r.Context(), stateOf(r).actor, f)
	if err != nil {
		return nil, err
	}
	return newList(vms, next), nil
}

func (a *API) createVM(r *http.Request) (any, error) {
	var req vm.CreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	wp, err := waitOf(r, 0)
	if err != nil {
		return nil, err
	}
	st := stateOf(r)
	v, err := a.vms.Create(r.Context(), st.actor, req)
	if err != nil {
		return nil, err
	}
	st.resourceID = v.ID
	return a.accepted(r, v, false, wp)
}

func (a *API) getVM(r *http.Request) (any, error) {
	return a.vms.Get(r.Context(), stateOf(r).actor, r.PathValue("id"))
}

func (a *API) updateVM(r *http.Request) (any, error) {
	var req vm.UpdateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return a.vms.Update(r.Context(), stateOf(r).actor, r.PathValue("id"), req)
}

func (a *API) deleteVM(r *http.Request) (any, error) {
	wp, err := waitOf(r, 0)
	if err != nil {
		return nil, err
	}
	v, err := a.vms.Delete(r.Context(), stateOf(r).actor, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return a.accepted(r, v, true, wp)
}

// vmAction returns the handler of one lifecycle action.
func (a *API) vmAction(action novacron.Action) handlerFunc {
	return func(r *http.Request) (any, error) {
		var opts vm.StopOptions
		if action == novacron.ActionStop {
			if err := decodeOptional(r, &opts); err != nil {
				return nil, err
			}
		}
		implicit := time.Duration(0)
		if action == novacron.ActionPause || action == novacron.ActionResume {
			implicit = fastWait
		}
		wp, err := waitOf(r, implicit)
		if err != nil {
			return nil, err
		}
		v, err := a.vms.Act(r.Context(), stateOf(r).actor, r.PathValue("id"), action, opts)
		if err != nil {
			return nil, err
		}
		return a.accepted(r, v, false, wp)
	}
}

// waitParams reads ?wait= and ?timeout=, before anything is done.
type waitParams struct {
	wait    bool
	timeout time.Duration
}

func waitOf(r *http.Request, implicit time.Duration) (waitParams, error) {
	q := r.URL.Query()
	p := waitParams{wait: q.Get("wait") == "1" || q.Get("wait") == "true", timeout: implicit}
	if !p.wait {
		return p, nil
	}
	p.timeout = defaultWait
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > maxWait {
			return p, novacron.FieldError("timeout", "must be a duration up to %s", maxWait)
		}
		p.timeout = d
	}
	return p, nil
}

// accepted answers an asynchronous call: 202 with the VM and the
// operation's Location, or, with ?wait=1, the outcome of the operation.
func (a *API) accepted(r *http.Request, v *novacron.VM, deleting bool, p waitParams) (any, error) {
	opID := v.OperationID
	wait, timeout := p.wait, p.timeout
	header := http.Header{"Location": {"/api/operations/" + opID}}
	if timeout == 0 || opID == "" {
		return &response{status: http.StatusAccepted, body: v, header: header}, nil
	}
	actor := stateOf(r).actor
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	op, err := a.vms.Wait(ctx, auth.ScopeOf(actor), opID)
	if err != nil {
		return nil, err
	}
	cur, err := a.vms.Get(r.Context(), actor, v.ID)
	gone := novacron.IsCode(err, novacron.ENotFound)
	if err != nil && !gone {
		return nil, err
	}
	switch {
	case op.Status == novacron.OpRunning:
		if gone {
			cur = v
		}
		return &response{status: http.StatusAccepted, body: cur, header: header}, nil
	case op.Status == novacron.OpFailed:
		msg := op.Error
		if cur != nil && cur.StateReason != "" && !strings.Contains(msg, cur.StateReason) && !strings.Contains(cur.StateReason, msg) {
			msg += " (" + cur.StateReason + ")"
		}
		return nil, &novacron.Error{Code: novacron.EOperationFailed, Message: op.Action + " failed: " + msg,
			Details: map[string]any{"operation_id": op.ID}}
	case deleting || gone:
		return &response{status: http.StatusNoContent, header: header}, nil
	case !wait:
		return &response{status: http.StatusAccepted, body: cur, header: header}, nil
	default:
		return &response{status: http.StatusOK, body: cur, header: header}, nil
	}
}

// maxTail bounds ?tail= of the log routes.
const maxTail = 100000

// tailParam reads ?tail=, the number of last lines of a log (0: all kept).
func tailParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("tail")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxTail {
		return 0, novacron.FieldError("tail", "must be an integer between 0 and %d", maxTail)
	}
	return n, nil
}

// plainText answers b as text.
func plainText(b []byte) *response {
	if b == nil {
		b = []byte{}
	}
	return &response{status: http.StatusOK, raw: b, header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}}
}

func (a *API) vmLogs(r *http.Request) (any, error) {
	tail, err := tailParam(r)
	if err != nil {
		return nil, err
	}
	switch r.URL.Query().Get("follow") {
	case "", "0", "false":
	case "1", "true":
		follow, err := a.vms.FollowLogs(r.Context(), stateOf(r).actor, r.PathValue("id"), tail)
		if err != nil {
			return nil, err
		}
		return &response{status: http.StatusOK, stream: follow,
			header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}}, nil
	default:
		return nil, novacron.FieldError("follow", "must be 1 or 0")
	}
	b, err := a.vms.Logs(r.Context(), stateOf(r).actor, r.PathValue("id"), tail)
	if err != nil {
		return nil, err
	}
	return plainText(b), nil
}

func (a *API) listOperations(r *http.Request) (any, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := novacron.OperationFilter{Page: page, VMID: q.Get("vm_id"), Status: novacron.OpStatus(q.Get("status"))}
	switch f.Status {
	case "", novacron.OpRunning, novacron.OpSucceeded, novacron.OpFailed:
	default:
		return nil, novacron.FieldError("status", "must be running, succeeded or failed")
	}
	ops, next, err := a.store.ListOperations(r.Context(), auth.ScopeOf(stateOf(r).actor), f)
	if err != nil {
		return nil, err
	}
	return newList(ops, next), nil
}

func (a *API) getOperation(r *http.Request) (any, error) {
	return a.store.GetOperation(r.Context(), auth.ScopeOf(stateOf(r).actor), r.PathValue("id"))
}

func (a *API) listNodes(r *http.Request) (any, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	nodes, next, err := a.store.ListNodes(r.Context(), page)
	if err != nil {
		return nil, err
	}
	return newList(nodes, next), nil
}

func (a *API) getNode(r *http.Request) (any, error) {
	return a.store.GetNode(r.Context(), r.PathValue("id"))
}
