package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for one writer and a polling reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func transferEnv(stdout, stderr *lockedBuffer, vars map[string]string) *env {
	return &env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr,
		lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

func TestTransferCLI(t *testing.T) {
	dir := t.TempDir()
	src, out, basis := filepath.Join(dir, "disk.img"), filepath.Join(dir, "copy.img"), filepath.Join(dir, "old.img")
	data := bytes.Repeat([]byte("novacron transfer engine test data "), 200000)
	if err := os.WriteFile(basis, data, 0o600); err != nil {
		t.Fatal(err)
	}
	copy(data[3<<20:], "a small change")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var rout, rerr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, transferEnv(&rout, &rerr, map[string]string{transferTokenEnv: "tok"}),
			[]string{"transfer", "receive", "--listen", "127.0.0.1:0", "--out", out, "--basis", basis, "--json"})
	}()
	var addr string
	re := regexp.MustCompile(`listening on (\S+)`)
	for addr == "" {
		select {
		case code := <-done:
			t.Fatalf("receiver exited with %d: %s", code, rerr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if m := re.FindStringSubmatch(rerr.String()); m != nil {
			addr = m[1]
		}
	}
	var sout, serr lockedBuffer
	code := run(ctx, transferEnv(&sout, &serr, nil), []string{"transfer", "send", "--to", addr, "--token", "tok", "--bwlimit", "1000", "--json", src})
	if code != 0 {
		t.Fatalf("send exited with %d: %s", code, serr.String())
	}
	if code := <-done; code != 0 {
		t.Fatalf("receive exited with %d: %s", code, rerr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file differs (%v)", err)
	}
	for _, o := range []string{sout.String(), rout.String()} {
		var s transferSummary
		if err := json.Unmarshal([]byte(o), &s); err != nil {
			t.Fatalf("summary %q: %v", o, err)
		}
		if s.BytesTotal != int64(len(data)) || s.BytesOnWire <= 0 || s.BytesOnWire > 200<<10 || s.Speedup < 10 || s.Seconds <= 0 {
			t.Errorf("summary %+v", s)
		}
	}
}

func TestTransferCLIUsage(t *testing.T) {
	var o, e lockedBuffer
	if code := run(context.Background(), transferEnv(&o, &e, nil), []string{"transfer", "send", "--to", "127.0.0.1:1", "x"}); code != exitUsage {
		t.Errorf("send without a token exited %d, want %d: %s", code, exitUsage, e.String())
	}
	if code := run(context.Background(), transferEnv(&o, &e, nil), []string{"transfer", "receive", "--out", "x"}); code != exitUsage {
		t.Errorf("receive without --listen exited %d, want %d", code, exitUsage)
	}
}
