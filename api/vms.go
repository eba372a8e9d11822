package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/novacron/novacron"
)

// ErrStillRunning is matched (errors.Is) by the error of an asynchronous
// call that was asked to wait and whose operation had not ended when the
// wait did. The call still returns the VM as it was at that moment; the
// error is a *StillRunningError naming the operation to follow.
var ErrStillRunning = errors.New("operation still running")

// StillRunningError says that a waited-for operation was still running when
// the server's wait ended (a 202 answer to ?wait=1). The operation goes on:
// follow it with GetOperation.
type StillRunningError struct {
	// OperationID is the operation's id, from the answer's Location header
	// or else the VM's operation_id; it may be empty if the server gave
	// neither.
	OperationID string
	// Timeout is the wait that was asked for (0: the server's default).
	Timeout time.Duration
}

func (e *StillRunningError) Error() string {
	var b strings.Builder
	b.WriteString("operation ")
	if e.OperationID != "" {
		b.WriteString(e.OperationID + " ")
	}
	b.WriteString("is still running")
	if e.Timeout > 0 {
		b.WriteString(" after " + formatDuration(e.Timeout))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrStillRunning) true.
func (e *StillRunningError) Is(target error) bool { return target == ErrStillRunning }

// operationsPath is the prefix of the Location header of asynchronous calls.
const operationsPath = "/api/operations/"

// query returns the query parameters of w, or nil without Wait.
func (w WaitOptions) query() url.Values {
	if !w.Wait {
		return nil
	}
	q := url.Values{"wait": {"1"}}
	if w.Timeout > 0 {
		q.Set("timeout", formatDuration(w.Timeout))
	}
	return q
}

// formatDuration writes whole seconds as "60s" rather than "1m0s"; both are
// Go duration strings.
func formatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// operationFromLocation returns the operation id of a Location header
// ("/api/operations/{id}", possibly an absolute URL), or "".
func operationFromLocation(loc string) string {
	if loc == "" {
		return ""
	}
	u, err := url.Parse(loc)
	if err != nil {
		return ""
	}
	i := strings.LastIndex(u.Path, operationsPath)
	if i < 0 {
		return ""
	}
	id := u.Path[i+len(operationsPath):]
	if id == "" || strings.Contains(id, "/") {
		return ""
	}
	return id
}

// vmAction sends an asynchronous call whose answer is a VM (or nothing, for
// a 204) and applies the wait semantics: a 202 to a call that asked to wait
// returns the VM with a *StillRunningError.
func (c *Client) vmAction(ctx context.Context, method, path string, in any, wait WaitOptions) (*novacron.VM, error) {
	resp, err := c.send(ctx, method, path, wait.query(), in, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, decodeError(resp, body)
	}
	var vm *novacron.VM
	if resp.StatusCode != http.StatusNoContent {
		var v novacron.VM
		switch err := json.NewDecoder(resp.Body).Decode(&v); {
		case err == nil:
			vm = &v
		case errors.Is(err, io.EOF):
			// No body: a 202 to a delete may carry none.
		default:
			return nil, fmt.Errorf("api: %s %s: decode answer: %w", method, path, err)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if wait.Wait && resp.StatusCode == http.StatusAccepted {
		id := operationFromLocation(resp.Header.Get("Location"))
		if id == "" && vm != nil {
			id = vm.OperationID
		}
		return vm, &StillRunningError{OperationID: id, Timeout: wait.Timeout}
	}
	return vm, nil
}

// CreateVM creates a VM. The server answers at once with the VM in state
// creating (its OperationID names the operation); with wait.Wait it answers
// when the VM is stopped (or running, with req.Start), or failed. A failure
// is an *Error with code operation_failed whose message gives the VM's
// state_reason; a wait that ends first returns the VM and a
// *StillRunningError (errors.Is(err, ErrStillRunning)).
func (c *Client) CreateVM(ctx context.Context, req CreateVMRequest, wait WaitOptions) (*novacron.VM, error) {
	return c.vmAction(ctx, http.MethodPost, "/api/vm/vms", req, wait)
}

// GetVM returns one VM by id.
func (c *Client) GetVM(ctx context.Context, id string) (*novacron.VM, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	var out novacron.VM
	if err := c.Do(ctx, http.MethodGet, pathf("/api/vm/vms/%s", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListVMs lists one page of the VMs the caller can see, oldest first.
func (c *Client) ListVMs(ctx context.Context, f VMFilter) (*List[novacron.VM], error) {
	q := pageQuery(f.Limit, f.Cursor,
		"state", string(f.State), "node_id", f.NodeID, "driver", f.Driver, "name", f.Name)
	keys := make([]string, 0, len(f.Labels))
	for k := range f.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Add("label", k+"="+f.Labels[k])
	}
	var out List[novacron.VM]
	if err := c.Do(ctx, http.MethodGet, "/api/vm/vms", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateVM changes the non-nil fields of a VM. Resizing (CPUs, MemoryMB) a
// VM that is not stopped is invalid_state.
func (c *Client) UpdateVM(ctx context.Context, id string, req UpdateVMRequest) (*novacron.VM, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	var out novacron.VM
	if err := c.Do(ctx, http.MethodPut, pathf("/api/vm/vms/%s", id), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteVM deletes a VM, stopping it first when it runs. Without wait it
// returns the VM in state deleting; with wait.Wait it returns a nil VM once
// the VM is gone, or the VM and a *StillRunningError when the wait ended
// first.
func (c *Client) DeleteVM(ctx context.Context, id string, wait WaitOptions) (*novacron.VM, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	return c.vmAction(ctx, http.MethodDelete, pathf("/api/vm/vms/%s", id), nil, wait)
}

// StartVM starts a stopped or failed VM. The wait semantics are CreateVM's.
func (c *Client) StartVM(ctx context.Context, id string, wait WaitOptions) (*novacron.VM, error) {
	return c.lifecycle(ctx, id, novacron.ActionStart, nil, wait)
}

// StopVM stops a running or paused VM, gracefully unless opts.Force. The
// wait semantics are CreateVM's.
func (c *Client) StopVM(ctx context.Context, id string, opts StopOptions, wait WaitOptions) (*novacron.VM, error) {
	// The body is always sent, {} at least: the route reads one.
	return c.lifecycle(ctx, id, novacron.ActionStop, opts, wait)
}

// RestartVM restarts a running VM. The wait semantics are CreateVM's.
func (c *Client) RestartVM(ctx context.Context, id string, wait WaitOptions) (*novacron.VM, error) {
	return c.lifecycle(ctx, id, novacron.ActionRestart, nil, wait)
}

// PauseVM pauses a running VM. The wait semantics are CreateVM's.
func (c *Client) PauseVM(ctx context.Context, id string, wait WaitOptions) (*novacron.VM, error) {
	return c.lifecycle(ctx, id, novacron.ActionPause, nil, wait)
}

// ResumeVM resumes a paused VM. The wait semantics are CreateVM's.
func (c *Client) ResumeVM(ctx context.Context, id string, wait WaitOptions) (*novacron.VM, error) {
	return c.lifecycle(ctx, id, novacron.ActionResume, nil, wait)
}

func (c *Client) lifecycle(ctx context.Context, id string, action novacron.Action, in any, wait WaitOptions) (*novacron.VM, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	return c.vmAction(ctx, http.MethodPost, pathf("/api/vm/vms/%s/", id)+string(action), in, wait)
}

// VMLogs returns the output of a process or container VM as text: its last
// tail lines, or the server's default amount when tail is 0.
func (c *Client) VMLogs(ctx context.Context, id string, tail int) ([]byte, error) {
	return c.vmText(ctx, id, "logs", tail)
}

// vmText reads a text route of a VM that takes ?tail=.
func (c *Client) vmText(ctx context.Context, id, route string, tail int) ([]byte, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	var q url.Values
	if tail > 0 {
		q = url.Values{"tail": {strconv.Itoa(tail)}}
	}
	path := pathf("/api/vm/vms/%s/", id) + route
	resp, err := c.send(ctx, http.MethodGet, path, q, nil, "text/plain")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, decodeError(resp, body)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return b, fmt.Errorf("api: GET %s: read answer: %w", path, err)
	}
	return b, nil
}
