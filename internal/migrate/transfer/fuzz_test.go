package transfer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"
)

// FuzzBlock feeds arbitrary block frames to a receiver: whatever a peer
// sends, the receiver answers with an error or applies it within the file,
// never panics and never writes past the file's size.
func FuzzBlock(f *testing.F) {
	w := worker{o: &Options{SubBlockSize: 4096}, ctl: newLevelCtl(1), keep: map[int64]uint64{}, refs: map[uint64]ref{}}
	defer w.close()
	data := append(textBytes(3*4096, 1), make([]byte, 4096)...)
	r := w.do(job{off: 0, n: int64(len(data)), buf: data})
	f.Add(r.frames[5:])
	f.Add([]byte{1, opRef, 1, 0, 16, 0, 0})
	f.Add([]byte{2, opZero, 0x80, 0x20, opKeep, 1, 0, 0})
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2<<20))
	if err != nil {
		f.Fatal(err)
	}
	defer dec.Close()
	dir := f.TempDir()
	basis, err := os.Create(filepath.Join(dir, "basis"))
	if err != nil {
		f.Fatal(err)
	}
	defer basis.Close()
	if _, err := basis.Write(data); err != nil {
		f.Fatal(err)
	}
	const size = 1 << 20
	f.Fuzz(func(t *testing.T, b []byte) {
		part, err := os.Create(filepath.Join(dir, "part"))
		if err != nil {
			t.Fatal(err)
		}
		defer part.Close()
		if err := part.Truncate(size); err != nil {
			t.Fatal(err)
		}
		fw := &fileWriter{part: part, size: size, sub: 4096, kept: map[int64]hash128{0: {}},
			sources: []source{{}, {basis, int64(len(data))}}, digest: xxh3.New128(), buf: make([]byte, 64<<10), st: &Stats{}}
		_ = fw.block(b, dec, make([]byte, 64<<10), 64<<10)
		if fw.cur > size {
			t.Fatalf("wrote up to %d of %d", fw.cur, size)
		}
		if fi, _ := part.Stat(); fi.Size() != size {
			t.Fatalf("the file grew to %d", fi.Size())
		}
	})
}
