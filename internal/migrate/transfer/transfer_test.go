package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var testToken = []byte("s3cret-token")

// pair returns two ends of a loopback TCP connection.
func pair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type outcome struct {
	send, recv       Stats
	sendErr, recvErr error
}

// run sends src to out over loopback TCP; wrap may replace the sender's conn.
func run(t *testing.T, src, out string, so, ro Options, wrap func(net.Conn) net.Conn) outcome {
	t.Helper()
	a, b := pair(t)
	if wrap != nil {
		a = wrap(a)
	}
	if so.Token == nil {
		so.Token = testToken
	}
	if ro.Token == nil {
		ro.Token = testToken
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var o outcome
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.recv, o.recvErr = Receive(ctx, b, out, ro)
		b.Close()
	}()
	o.send, o.sendErr = Send(ctx, a, src, so)
	a.Close()
	wg.Wait()
	return o
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// textBytes is compressible but not trivially so.
func textBytes(n int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, 1))
	words := []string{"kernel ", "qemu ", "disk ", "block ", "migrate ", "novacron ", "\n", "0x", "ext4 ", "inode "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		fmt.Fprintf(&b, "%d", r.IntN(1000))
	}
	return b.Bytes()[:n]
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%d and %d bytes)", a, b, len(x), len(y))
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

const (
	sub   = MinSubBlockSize // the sub-block size of files this small
	block = DefaultBlockSize
)

func TestRoundTrip(t *testing.T) {
	sparse := func(t *testing.T, path string) {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(64 << 20); err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{0, 5<<20 + 17, 40 << 20, 64<<20 - 3} {
			if _, err := f.WriteAt(textBytes(3000, uint64(off)), off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(64 << 20); err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(0o640); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		make     func(t *testing.T, path string)
		maxAlloc int64 // receiver's allocated bytes at most (0: unchecked)
		maxWire  int64 // bytes on the wire at most (0: unchecked)
	}{
		{name: "empty", make: func(t *testing.T, p string) { writeFile(t, p, nil) }},
		{name: "one byte", make: func(t *testing.T, p string) { writeFile(t, p, []byte{'x'}) }},
		{name: "sub-block minus one", make: func(t *testing.T, p string) { writeFile(t, p, textBytes(sub-1, 1)) }},
		{name: "sub-block", make: func(t *testing.T, p string) { writeFile(t, p, textBytes(sub, 2)) }},
		{name: "sub-block plus one", make: func(t *testing.T, p string) { writeFile(t, p, textBytes(sub+1, 3)) }},
		{name: "block minus one", make: func(t *testing.T, p string) { writeFile(t, p, textBytes(block-1, 4)) }},
		{name: "block", make: func(t *testing.T, p string) { writeFile(t, p, textBytes(block, 5)) }},
		{name: "block plus one", make: func(t *testing.T, p string) { writeFile(t, p, textBytes(block+1, 6)) }},
		{name: "several blocks", make: func(t *testing.T, p string) { writeFile(t, p, textBytes(7*block+12345, 7)) }, maxWire: 7 * block / 2},
		{name: "sparse", make: sparse, maxAlloc: 4 * sub * 2, maxWire: 64 << 10},
		{name: "all zero", make: func(t *testing.T, p string) { writeFile(t, p, make([]byte, 9*block+5)) }, maxAlloc: 1 << 16, maxWire: 4 << 10},
		{name: "incompressible", make: func(t *testing.T, p string) { writeFile(t, p, randBytes(5*block+777)) }, maxWire: 5*block + 777 + 64<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
			tt.make(t, src)
			var last Progress
			o := run(t, src, out, Options{Progress: func(p Progress) { last = p }}, Options{}, nil)
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
			}
			sameFile(t, src, out)
			fi, _ := os.Stat(out)
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", fi.Mode().Perm())
			}
			if _, err := os.Stat(out + PartialSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("partial file left behind: %v", err)
			}
			if tt.maxAlloc > 0 {
				if a := allocated(t, out); a > tt.maxAlloc {
					t.Errorf("receiver allocated %d bytes, want at most %d", a, tt.maxAlloc)
				}
			}
			if tt.maxWire > 0 && o.send.Wire() > tt.maxWire {
				t.Errorf("%d bytes on the wire, want at most %d", o.send.Wire(), tt.maxWire)
			}
			if o.send.Wire() != o.recv.Wire() {
				t.Errorf("sender counted %d bytes on the wire, receiver %d", o.send.Wire(), o.recv.Wire())
			}
			if !last.Done || last.Scanned != fi.Size() || last.Total != fi.Size() {
				t.Errorf("last progress %+v", last)
			}
		})
	}
}

// mutate returns a copy of b with n changes of a few bytes at scattered offsets.
func mutate(b []byte, n int, seed uint64) []byte {
	c := bytes.Clone(b)
	r := mrand.New(mrand.NewPCG(seed, 2))
	for range n {
		off := r.IntN(len(c) - 16)
		copy(c[off:], fmt.Sprintf("changed%03d", r.IntN(1000)))
	}
	return c
}

func TestDelta(t *testing.T) {
	base := randBytes(16*block + 100)
	newer := mutate(base, 5, 1)
	tests := []struct {
		name        string
		old, basis  bool
		maxLiteral  int64
		wantCopied  bool
		wantMatched bool
		changes     int
		subBlock    int
	}{
		{name: "older copy at the output path", old: true, maxLiteral: 5 * sub * 2, wantCopied: true},
		{name: "basis file", basis: true, maxLiteral: 5 * sub * 2, wantCopied: true},
		{name: "no basis", maxLiteral: int64(len(newer))},
		{name: "scattered small changes", old: true, changes: 300, maxLiteral: 300 * sub * 2, wantCopied: true},
		{name: "64 KiB sub-blocks", old: true, subBlock: 64 << 10, maxLiteral: 5 * (64 << 10) * 2, wantCopied: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, out, bas := filepath.Join(dir, "src"), filepath.Join(dir, "out"), filepath.Join(dir, "basis")
			newer := newer
			if tt.changes > 0 {
				newer = mutate(base, tt.changes, 3)
			}
			writeFile(t, src, newer)
			var ro Options
			if tt.old {
				writeFile(t, out, base)
			}
			if tt.basis {
				writeFile(t, bas, base)
				ro.Basis = []string{bas}
			}
			o := run(t, src, out, Options{SubBlockSize: tt.subBlock}, ro, nil)
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
			}
			sameFile(t, src, out)
			if o.send.Literal > tt.maxLiteral {
				t.Errorf("sent %d literal bytes, want at most %d", o.send.Literal, tt.maxLiteral)
			}
			if tt.wantCopied && o.send.Wire() > int64(len(newer))/10 {
				t.Errorf("%d bytes on the wire for %d bytes of which 5 small changes", o.send.Wire(), len(newer))
			}
			t.Logf("wire %d bytes, literal %d, copied %d, speedup %.1f", o.send.Wire(), o.send.Literal, o.send.Copied, o.send.Speedup())
		})
	}
}

// cutConn closes the connection after limit bytes were written.
type cutConn struct {
	net.Conn
	limit int64
	n     atomic.Int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.n.Load()+int64(len(p)) > c.limit {
		k := c.limit - c.n.Load()
		if k > 0 {
			n, _ := c.Conn.Write(p[:k])
			c.n.Add(int64(n))
		}
		c.Conn.Close()
		return int(max(k, 0)), net.ErrClosed
	}
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func TestResume(t *testing.T) {
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	data := randBytes(24 * block)
	writeFile(t, src, data)
	o := run(t, src, out, Options{}, Options{}, func(c net.Conn) net.Conn { return &cutConn{Conn: c, limit: 12 * block} })
	if o.sendErr == nil || o.recvErr == nil {
		t.Fatalf("cut transfer succeeded: send %v, receive %v", o.sendErr, o.recvErr)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("output exists after a failed transfer: %v", err)
	}
	if _, err := os.Stat(out + PartialSuffix); err != nil {
		t.Fatalf("no partial file kept: %v", err)
	}
	o = run(t, src, out, Options{}, Options{}, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("resumed: send %v, receive %v", o.sendErr, o.recvErr)
	}
	sameFile(t, src, out)
	if o.send.Matched < 8*block || o.send.Literal > 16*block {
		t.Errorf("resume kept %d bytes and sent %d again", o.send.Matched, o.send.Literal)
	}
	t.Logf("resumed: kept %d, sent %d literal, %d on the wire", o.send.Matched, o.send.Literal, o.send.Wire())
}

// flipConn flips one bit of the byte at offset at in the written stream.
type flipConn struct {
	net.Conn
	at int64
	n  int64
}

func (c *flipConn) Write(p []byte) (int, error) {
	if c.at >= c.n && c.at < c.n+int64(len(p)) {
		p = bytes.Clone(p)
		p[c.at-c.n] ^= 0x10
	}
	c.n += int64(len(p))
	return c.Conn.Write(p)
}

func TestCorruptBlockDetected(t *testing.T) {
	for _, level := range []int{-1, 1} {
		t.Run(fmt.Sprintf("level %d", level), func(t *testing.T) {
			dir := t.TempDir()
			src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
			data := randBytes(4 * block)
			if level > 0 {
				data = textBytes(4*block, 9)
			}
			writeFile(t, src, data)
			o := run(t, src, out, Options{Level: level}, Options{}, func(c net.Conn) net.Conn { return &flipConn{Conn: c, at: 100000} })
			if !errors.Is(o.recvErr, ErrVerify) {
				t.Errorf("receiver: %v, want ErrVerify", o.recvErr)
			}
			if o.sendErr == nil {
				t.Error("sender succeeded")
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("corrupt output stored: %v", err)
			}
		})
	}
}

func TestWrongTokenRefused(t *testing.T) {
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	writeFile(t, src, []byte("secret data"))
	o := run(t, src, out, Options{Token: []byte("wrong")}, Options{}, nil)
	if !errors.Is(o.sendErr, ErrAuth) || !errors.Is(o.recvErr, ErrAuth) {
		t.Fatalf("send: %v, receive: %v; want ErrAuth on both", o.sendErr, o.recvErr)
	}
	if o.send.WireSent > 200 {
		t.Errorf("sender wrote %d bytes to an unauthenticated peer", o.send.WireSent)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("output written")
	}
}

func TestBandwidthLimit(t *testing.T) {
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	writeFile(t, src, randBytes(2*block))
	start := time.Now()
	o := run(t, src, out, Options{BandwidthLimit: 8 << 20}, Options{}, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("2 MiB at 8 MiB/s took %v", d)
	}
}

func TestPipe(t *testing.T) {
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	writeFile(t, src, textBytes(3*block+1, 11))
	a, b := net.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, err := Receive(context.Background(), b, out, Options{Token: testToken})
		errc <- err
	}()
	if _, err := Send(context.Background(), a, src, Options{Token: testToken}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, out)
}

func TestSubBlockFor(t *testing.T) {
	for _, tt := range []struct {
		data  int64
		block int
		want  int
	}{
		{0, 1 << 20, 4 << 10},
		{4 << 30, 1 << 20, 4 << 10},
		{4<<30 + 1, 1 << 20, 8 << 10},
		{100 << 30, 1 << 20, 128 << 10},
		{1 << 50, 1 << 20, 1 << 20},
		{1 << 20, 2 << 10, 2 << 10},
		{1 << 20, 12 << 10, 4 << 10},
		{1 << 20, 6 << 10, 6 << 10},
	} {
		if got := subBlockFor(tt.data, tt.block); got != tt.want {
			t.Errorf("subBlockFor(%d, %d) = %d, want %d", tt.data, tt.block, got, tt.want)
		}
	}
}
