package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/novacron/novacron/api"
)

// TestUploadImageOptions checks what an upload sends: the name, format and
// options in the query (the command as one JSON array), the body as it is.
func TestUploadImageOptions(t *testing.T) {
	var got struct {
		query url.Values
		ct    string
		body  string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.query, got.ct, got.body = r.URL.Query(), r.Header.Get("Content-Type"), string(b)
		var cmd []string
		if c := r.URL.Query().Get("command"); c != "" {
			if err := json.Unmarshal([]byte(c), &cmd); err != nil {
				t.Errorf("command %q: %v", c, err)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": "i1", "name": r.URL.Query().Get("name"),
			"format": r.URL.Query().Get("format"), "size": len(b), "command": cmd})
	}))
	t.Cleanup(srv.Close)
	c := api.New(srv.URL, api.WithToken("tok"))
	ctx := context.Background()

	cmd := []string{"/bin/sh", "-c", `echo "hi" & exit`, "ü"}
	img, err := c.UploadImage(ctx, "busybox", "rootfs", strings.NewReader("tarball"), 7,
		api.UploadOptions{Public: true, Command: cmd})
	if err != nil {
		t.Fatal(err)
	}
	if got.query.Get("name") != "busybox" || got.query.Get("format") != "rootfs" || got.query.Get("public") != "true" ||
		got.query.Get("command") != `["/bin/sh","-c","echo \"hi\" \u0026 exit","ü"]` ||
		got.ct != "application/octet-stream" || got.body != "tarball" {
		t.Errorf("sent %v, %q, %q", got.query, got.ct, got.body)
	}
	if img.ID != "i1" || !slices.Equal(img.Command, cmd) || img.Size != 7 {
		t.Errorf("answer %+v", img)
	}

	// Without options: no command, not public.
	if _, err := c.UploadImage(ctx, "k", "kernel", strings.NewReader("k"), -1); err != nil {
		t.Fatal(err)
	}
	if got.query.Has("command") || got.query.Has("public") {
		t.Errorf("sent %v", got.query)
	}
	// An empty command is sent as one: the server refuses it.
	if _, err := c.UploadImage(ctx, "r", "rootfs", strings.NewReader("r"), 1, api.UploadOptions{Command: []string{}}); err != nil {
		t.Fatal(err)
	}
	if got.query.Get("command") != "[]" {
		t.Errorf("an empty command sent as %q", got.query.Get("command"))
	}
}
