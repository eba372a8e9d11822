package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/novacron/novacron"
)

// ListAudit lists one page of audit entries, newest first (admins: all;
// operators: their tenant).
func (c *Client) ListAudit(ctx context.Context, f AuditFilter) (*List[novacron.AuditEntry], error) {
	q := pageQuery(f.Limit, f.Cursor,
		"user_id", f.UserID, "action", f.Action, "resource", f.Resource, "from", f.From, "to", f.To)
	var out List[novacron.AuditEntry]
	if err := c.Do(ctx, http.MethodGet, "/api/audit", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Info returns the server's name, version, drivers and features.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var out Info
	if err := c.Do(ctx, http.MethodGet, "/api/info", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health checks the server. A degraded server (503) returns both its report
// and an unavailable *Error, so callers can show which check failed.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	resp, err := c.send(ctx, http.MethodGet, "/health", nil, nil, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var h Health
	decoded := json.Unmarshal(body, &h) == nil && h.Status != ""
	if resp.StatusCode == http.StatusOK && decoded {
		return &h, nil
	}
	e := decodeError(resp, body)
	if decoded {
		if e.Code == novacron.EInternal || e.Code == novacron.EUnavailable {
			e.Message = "server is " + h.Status
		}
		return &h, e
	}
	if resp.StatusCode < 400 {
		e.Code, e.Message = novacron.EInternal, "malformed health answer"
	}
	return nil, e
}
