// Package benchkit is what the benchmarks that drive a NovaCron server
// share: an API client, percentiles, rounding and the process's own memory.
package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Client calls a NovaCron server's API as its admin.
type Client struct {
	Base, Token string
	HC          *http.Client
}

// Login signs in as admin with password pw and keeps the token.
func (c *Client) Login(ctx context.Context, pw string) error {
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": pw})
	var lr struct{ Token string }
	if err := c.Do(ctx, "POST", "/auth/login", "application/json", bytes.NewReader(body), http.StatusOK, &lr); err != nil {
		return err
	}
	if lr.Token == "" {
		return errors.New("no token")
	}
	c.Token = lr.Token
	return nil
}

// explain adds to a failed call what the VM says of its state.
func (c *Client) Explain(ctx context.Context, id string, err error) error {
	if err == nil || id == "" {
		return err
	}
	var v struct {
		State       string `json:"state"`
		StateReason string `json:"state_reason"`
	}
	if gerr := c.Do(ctx, "GET", "/api/vm/vms/"+id, "", nil, http.StatusOK, &v); gerr == nil {
		return fmt.Errorf("%w; the vm is now %s (%s)", err, v.State, v.StateReason)
	}
	return err
}

// do makes one call and decodes its answer into out, which must have the
// status want; a *[]byte out takes the body as it is.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body io.Reader, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HC.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*out = b
		return nil
	default:
		return json.Unmarshal(b, out)
	}
}

// SelfMemory returns this process's RSS, its live Go heap and its number
// of goroutines, after a collection that returns free memory to the
// system, so that what remains is what is in use. The benchmark's own
// keep-alive connections on hc (three goroutines each, client and server
// side) are closed first: they are not the server's cost.
func SelfMemory(hc *http.Client) (rss int64, heap uint64, goroutines int) {
	hc.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond) // for the server's side to see them close
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				rss = kb << 10
			}
		}
	}
	return rss, ms.HeapAlloc, runtime.NumGoroutine()
}

// LastLine is the last non-empty line of b, trimmed.
func LastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Pct returns the p-th percentile of sorted durations (0 for none).
func Pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// Round rounds d for printing: to 10 ms from a second, 10 µs from a
// millisecond, else to a microsecond.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
