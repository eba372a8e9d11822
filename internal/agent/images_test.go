package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/novacron/novacron/internal/agent"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/nodeclient"
)

// source serves images from memory and counts fetches.
type source struct {
	files   map[string][]byte
	fetches int
}

func (s *source) Open(_ context.Context, id string) (io.ReadCloser, error) {
	s.fetches++
	return io.NopCloser(bytes.NewReader(s.files[id])), nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestImagesAreFetchedOnceVerifiedAndCached(t *testing.T) {
	kernel := []byte("kernel bytes")
	src := &source{files: map[string][]byte{"k": kernel, "bad": []byte("tampered")}}
	drv := fake.New("qemu")
	ag, err := agent.New(agent.Config{Dir: t.TempDir(), NodeName: "n", Drivers: []driver.Driver{drv}, Images: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec := func(id string, ref *nodeclient.ImageRef) nodeclient.GuestSpec {
		return nodeclient.GuestSpec{Driver: "qemu", Spec: driver.Spec{ID: id, CPUs: 1, MemoryMB: 64, Config: json.RawMessage(`{}`)},
			Images: nodeclient.GuestImages{Kernel: ref}}
	}
	ref := &nodeclient.ImageRef{ID: "k", Format: "kernel", SHA256: sum(kernel)}
	for _, id := range []string{"0190a0a0-0000-7000-8000-000000000001", "0190a0a0-0000-7000-8000-000000000002"} {
		if err := ag.CreateGuest(ctx, spec(id, ref)); err != nil {
			t.Fatal(err)
		}
		got, _ := drv.Spec(id)
		b, err := os.ReadFile(got.Kernel)
		if err != nil || !bytes.Equal(b, kernel) {
			t.Fatalf("guest %s kernel %q: %q %v", id, got.Kernel, b, err)
		}
	}
	if src.fetches != 1 {
		t.Fatalf("%d fetches for one image, want 1", src.fetches)
	}
	// A copy whose hash differs is refused and not cached.
	err = ag.CreateGuest(ctx, spec("0190a0a0-0000-7000-8000-000000000003",
		&nodeclient.ImageRef{ID: "bad", Format: "kernel", SHA256: sum([]byte("what the server promised"))}))
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("tampered image: %v", err)
	}
}
