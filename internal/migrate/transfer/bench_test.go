package transfer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// benchFile writes 64 MiB of data of the given kind once per benchmark.
func benchFile(b *testing.B, kind string) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), kind)
	var data []byte
	switch kind {
	case "text":
		data = textBytes(64<<20, 1)
	case "random":
		data = randBytes(64 << 20)
	case "binaries":
		// Real programs, as a root file system holds them.
		paths, _ := filepath.Glob("/usr/bin/*")
		for _, p := range paths {
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			b, _ := os.ReadFile(p)
			data = append(data, b...)
			if len(data) >= 64<<20 {
				break
			}
		}
		if len(data) < 64<<20 {
			b.Skipf("only %d bytes of programs in /usr/bin", len(data))
		}
		data = data[:64<<20]
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkSend moves 64 MiB over loopback TCP through the engine at a few
// block sizes and levels; compare with BenchmarkCopy, the same bytes by
// io.Copy. With GOMAXPROCS=1 its rate is what one core does for both sides.
func BenchmarkSend(b *testing.B) {
	for _, kind := range []string{"binaries", "text", "random"} {
		src := benchFile(b, kind)
		for _, bc := range []struct {
			name         string
			block, level int
		}{
			{"256KiB/adaptive", 256 << 10, 0}, {"1MiB/adaptive", 1 << 20, 0}, {"4MiB/adaptive", 4 << 20, 0},
			{"1MiB/level1", 1 << 20, 1}, {"1MiB/raw", 1 << 20, -1},
		} {
			b.Run(kind+"/"+bc.name, func(b *testing.B) {
				b.SetBytes(64 << 20)
				var wire int64
				for b.Loop() {
					out := filepath.Join(b.TempDir(), "out")
					o := runB(b, src, out, Options{Token: testToken, BlockSize: bc.block, Level: bc.level})
					wire = o.send.Wire()
				}
				b.ReportMetric(float64(64<<20)/float64(wire), "speedup")
			})
		}
	}
}

func BenchmarkCopy(b *testing.B) {
	src := benchFile(b, "random")
	b.SetBytes(64 << 20)
	for b.Loop() {
		a, c := pair(b)
		var wg sync.WaitGroup
		wg.Go(func() {
			f, _ := os.Create(filepath.Join(b.TempDir(), "out"))
			_, _ = io.Copy(f, c)
			f.Close()
		})
		f, _ := os.Open(src)
		_, _ = io.Copy(a, f)
		f.Close()
		a.Close()
		wg.Wait()
	}
}

func runB(b *testing.B, src, out string, so Options) outcome {
	a, c := pair(b)
	var o outcome
	var wg sync.WaitGroup
	wg.Go(func() { o.recv, o.recvErr = Receive(context.Background(), c, out, Options{Token: testToken}) })
	o.send, o.sendErr = Send(context.Background(), a, src, so)
	wg.Wait()
	if o.sendErr != nil || o.recvErr != nil {
		b.Fatal(o.sendErr, o.recvErr)
	}
	return o
}

// BenchmarkPipeline is the sender's work on one core: reading blocks,
// finding zero sub-blocks, hashing and compressing (the automatic level
// starts at 1), on programs as a root file system holds them. Its rate is
// per core: the sender runs one such pipeline on every core.
func BenchmarkPipeline(b *testing.B) {
	for _, level := range []int{1, 2} {
		b.Run(fmt.Sprintf("level%d", level), func(b *testing.B) {
			src := benchFile(b, "binaries")
			f, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			o := Options{SubBlockSize: MinSubBlockSize, BlockSize: DefaultBlockSize}
			w := worker{o: &o, ctl: newLevelCtl(level), keep: map[int64]uint64{}, refs: map[uint64]ref{}}
			defer w.close()
			buf := make([]byte, DefaultBlockSize)
			b.SetBytes(64 << 20)
			var out int64
			for b.Loop() {
				out = 0
				for off := int64(0); off < 64<<20; off += DefaultBlockSize {
					if _, err := f.ReadAt(buf, off); err != nil {
						b.Fatal(err)
					}
					r := w.do(job{off: off, n: DefaultBlockSize, buf: buf})
					out += int64(len(r.frames))
				}
			}
			b.ReportMetric(float64(64<<20)/float64(out), "ratio")
		})
	}
}
