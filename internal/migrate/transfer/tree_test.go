package transfer

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

func runTree(t *testing.T, src, out string, so, ro Options) outcome {
	t.Helper()
	a, b := pair(t)
	so.Token, ro.Token = testToken, testToken
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
	o.send, o.sendErr = SendTree(ctx, a, src, so)
	a.Close()
	wg.Wait()
	return o
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// compareTrees checks that every entry of a is in b with the same type,
// mode, content, link target, modification time (not for symlinks) and
// owner, and that hard links are hard links.
func compareTrees(t *testing.T, a, b string) {
	t.Helper()
	inodes := map[uint64]uint64{} // a's inode → b's inode
	must(t, filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
		must(t, err)
		rel, _ := filepath.Rel(a, path)
		other := filepath.Join(b, rel)
		fa, err := os.Lstat(path)
		must(t, err)
		fb, err := os.Lstat(other)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if fa.Mode() != fb.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, fb.Mode(), fa.Mode())
		}
		sa, sb := fa.Sys().(*syscall.Stat_t), fb.Sys().(*syscall.Stat_t)
		if os.Geteuid() == 0 && (sa.Uid != sb.Uid || sa.Gid != sb.Gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, sb.Uid, sb.Gid, sa.Uid, sa.Gid)
		}
		switch {
		case fa.Mode()&fs.ModeSymlink != 0:
			la, _ := os.Readlink(path)
			lb, _ := os.Readlink(other)
			if la != lb {
				t.Errorf("%s: link %q, want %q", rel, lb, la)
			}
			return nil
		case fa.Mode().IsRegular():
			sameFile(t, path, other)
			if sa.Nlink > 1 {
				if want, ok := inodes[sa.Ino]; ok && want != sb.Ino {
					t.Errorf("%s: not a hard link of its sibling", rel)
				}
				inodes[sa.Ino] = sb.Ino
			}
		}
		if !fa.ModTime().Equal(fb.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, fb.ModTime(), fa.ModTime())
		}
		return nil
	}))
}

func TestTree(t *testing.T) {
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	must(t, os.MkdirAll(filepath.Join(src, "etc/ssh"), 0o755))
	must(t, os.MkdirAll(filepath.Join(src, "var/log"), 0o750))
	writeFile(t, filepath.Join(src, "etc/hostname"), []byte("guest\n"))
	writeFile(t, filepath.Join(src, "etc/ssh/sshd_config"), textBytes(3*block+5, 1))
	writeFile(t, filepath.Join(src, "empty"), nil)
	must(t, os.Chmod(filepath.Join(src, "empty"), 0o4755))
	must(t, os.Link(filepath.Join(src, "etc/hostname"), filepath.Join(src, "var/hostname.link")))
	must(t, os.Symlink("../etc/hostname", filepath.Join(src, "var/rel.sym")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(src, "abs.sym")))
	f, err := os.Create(filepath.Join(src, "var/log/sparse.img"))
	must(t, err)
	must(t, f.Truncate(32<<20))
	_, err = f.WriteAt([]byte("data in the middle"), 16<<20)
	must(t, err)
	must(t, f.Close())
	if os.Geteuid() == 0 {
		must(t, os.Lchown(filepath.Join(src, "var/log/sparse.img"), 1234, 5678))
		must(t, os.Lchown(filepath.Join(src, "abs.sym"), 4321, 8765))
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	must(t, os.Chtimes(filepath.Join(src, "etc"), old, old))
	must(t, os.Chtimes(filepath.Join(src, "etc/hostname"), old, old))

	o := runTree(t, src, out, Options{}, Options{})
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
	}
	compareTrees(t, src, out)
	if a := allocated(t, filepath.Join(out, "var/log/sparse.img")); a > 1<<20 {
		t.Errorf("sparse file allocated %d bytes", a)
	}
	if o.send.Files != 4 || o.recv.Files != 4 {
		t.Errorf("files sent %d, received %d, want 4", o.send.Files, o.recv.Files)
	}

	// Again after a small change: only the change travels.
	writeFile(t, filepath.Join(src, "etc/ssh/sshd_config"), mutate(textBytes(3*block+5, 1), 1, 3))
	o = runTree(t, src, out, Options{}, Options{})
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
	}
	compareTrees(t, src, out)
	if o.send.Literal > 2*sub {
		t.Errorf("second run sent %d literal bytes", o.send.Literal)
	}
}

// evilSender authenticates and then sends the given entries.
func evilSender(t *testing.T, c net.Conn, hs ...fileHeader) {
	t.Helper()
	p := newPeer(context.Background(), c, 0)
	if err := p.handshakeSender(testToken); err != nil {
		t.Error(err)
		return
	}
	for _, h := range hs {
		h.block, h.sub = block, sub
		_ = p.send(fFile, h.encode())
		if h.kind == kindFile {
			_ = p.flush()
			_, _, _ = p.recv()
			_ = p.send(fEnd, make([]byte, 16))
		}
	}
	_ = p.send(fDone)
	_ = p.flush()
}

func TestTreeEscapeRefused(t *testing.T) {
	tests := []struct {
		name    string
		entries []fileHeader
		unsafe  bool
	}{
		{name: "dot dot", entries: []fileHeader{{name: "../escape", kind: kindFile}}, unsafe: true},
		{name: "absolute", entries: []fileHeader{{name: "/tmp/escape", kind: kindDir}}, unsafe: true},
		{name: "hard link to outside", entries: []fileHeader{{name: "x", kind: kindLink, linkTarget: "../victim"}}, unsafe: true},
		{name: "through a symlink", entries: []fileHeader{
			{name: "l", kind: kindSymlink, link: ".."},
			{name: "l/escape", kind: kindFile},
		}},
		{name: "through an absolute symlink", entries: []fileHeader{
			{name: "l", kind: kindSymlink, link: "/"},
			{name: "l/escape", kind: kindDir},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			writeFile(t, filepath.Join(dir, "victim"), []byte("x"))
			a, b := pair(t)
			go func() {
				defer a.Close()
				evilSender(t, a, tt.entries...)
			}()
			_, err := Receive(context.Background(), b, out, Options{Token: testToken})
			if err == nil {
				t.Fatal("receiver accepted an escaping entry")
			}
			if tt.unsafe && !errors.Is(err, ErrUnsafePath) {
				t.Errorf("error %v, want ErrUnsafePath", err)
			}
			for _, p := range []string{filepath.Join(dir, "escape"), filepath.Join(dir, "escape"+PartialSuffix), "/escape", "/escape" + PartialSuffix, "/tmp/escape"} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("%s was created", p)
				}
			}
		})
	}
}
