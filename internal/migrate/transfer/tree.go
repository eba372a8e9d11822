package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Entry kinds in tree mode.
const (
	kindFile    byte = 0
	kindDir     byte = 1
	kindSymlink byte = 2
	kindLink    byte = 3 // a hard link to an earlier entry
)

// treeEntry is what the sender's walk found.
type treeEntry struct {
	rel string
	fi  fs.FileInfo
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// SendTree moves the directory tree at dir (regular files, directories,
// symbolic links and hard links, with modes, owners, modification times and
// holes) to the receiver at the other end of conn. Device nodes, FIFOs and
// sockets are skipped. It closes nothing: the caller owns conn.
func SendTree(ctx context.Context, conn net.Conn, dir string, opts Options) (Stats, error) {
	o := opts.withDefaults()
	if o.SubBlockSize > 0 && o.BlockSize%o.SubBlockSize != 0 {
		return Stats{}, fmt.Errorf("transfer: block size %d is not a multiple of sub-block size %d", o.BlockSize, o.SubBlockSize)
	}
	var entries []treeEntry
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			total += fi.Size()
		}
		entries = append(entries, treeEntry{filepath.ToSlash(rel), fi})
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("transfer: %w", err)
	}
	start := time.Now()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	p := newPeer(ctx, conn, o.BandwidthLimit)
	var st Stats
	st.BytesTotal = total
	err = func() error {
		if err := p.handshakeSender(o.Token); err != nil {
			return err
		}
		type inode struct{ dev, ino uint64 }
		seen := map[inode]string{}
		var base int64
		userProgress := o.Progress
		for _, e := range entries {
			h := fileHeader{name: e.rel, mode: wireMode(e.fi.Mode()), mtimeNs: e.fi.ModTime().UnixNano(), block: o.BlockSize, sub: o.SubBlockSize}
			sys, _ := e.fi.Sys().(*syscall.Stat_t)
			if sys != nil {
				h.uid, h.gid = sys.Uid, sys.Gid
			}
			path := filepath.Join(dir, filepath.FromSlash(e.rel))
			switch m := e.fi.Mode(); {
			case m.IsDir():
				h.kind = kindDir
			case m&fs.ModeSymlink != 0:
				h.kind = kindSymlink
				target, err := os.Readlink(path)
				if err != nil {
					return fmt.Errorf("transfer: %w", err)
				}
				h.link = target
			case m.IsRegular():
				if sys != nil && sys.Nlink > 1 {
					key := inode{uint64(sys.Dev), sys.Ino}
					if first, ok := seen[key]; ok {
						h.kind, h.linkTarget = kindLink, first
						break
					}
					seen[key] = e.rel
				}
				h.kind = kindFile
				h.size = e.fi.Size()
			default:
				o.Logger.Debug("transfer: skipping special file", "path", e.rel, "mode", m)
				continue
			}
			var f *os.File
			if h.kind == kindFile {
				var err error
				if f, err = os.Open(path); err != nil {
					return fmt.Errorf("transfer: %w", err)
				}
				if h.sub, err = subBlockSize(&o, f, h.size); err != nil {
					f.Close()
					return fmt.Errorf("transfer: %s: %w", e.rel, err)
				}
			}
			if err := p.send(fFile, h.encode()); err != nil {
				closeFile(f)
				return err
			}
			if h.kind != kindFile {
				continue
			}
			if err := p.flush(); err != nil {
				f.Close()
				return err
			}
			if userProgress != nil {
				b := base
				o.Progress = func(pr Progress) {
					if pr.Done {
						return
					}
					pr.Total, pr.Scanned = total, b+pr.Scanned
					if el := time.Since(start).Seconds(); el > 0 {
						pr.Rate = float64(pr.Scanned) / el
						if pr.Rate > 0 {
							pr.ETA = time.Duration(float64(total-pr.Scanned) / pr.Rate * float64(time.Second))
						}
					}
					userProgress(pr)
				}
			}
			fo := o
			fo.SubBlockSize = h.sub
			err := sendFile(ctx, p, f, h.size, &fo, &st, start)
			f.Close()
			if err != nil {
				return fmt.Errorf("transfer: %s: %w", e.rel, err)
			}
			base += h.size
			st.Files++
		}
		if err := p.send(fDone); err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
		b, err := p.expect(fResult)
		if err != nil {
			return err
		}
		if len(b) < 1 || b[0] != 1 {
			return fmt.Errorf("%w: receiver: %s", ErrVerify, b[min(1, len(b)):])
		}
		if userProgress != nil {
			userProgress(Progress{Total: total, Scanned: total, Wire: p.conn.r.Load() + p.conn.w.Load(), Done: true,
				Rate: float64(total) / max(time.Since(start).Seconds(), 1e-9)})
		}
		return nil
	}()
	st.WireSent, st.WireReceived = p.conn.w.Load(), p.conn.r.Load()
	st.Duration = time.Since(start)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("transfer: %w (%w)", ctx.Err(), err)
	}
	return st, err
}

// receiveTree stores a tree from SendTree in dir (created if missing),
// starting with the frame already read. Every entry is opened through an
// os.Root at dir, so no entry, not even one reached through a symbolic link
// the sender created, lands outside it. Files already in dir serve as the
// older copies their new versions are delta-encoded against; entries dir has
// and the sender does not are left alone. Owners are applied when running as
// root.
func receiveTree(p *peer, dir string, t byte, b []byte, o *Options, st *Stats) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return p.fail(fmt.Errorf("transfer: %w", err))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return p.fail(fmt.Errorf("transfer: %w", err))
	}
	defer root.Close()
	asRoot := os.Geteuid() == 0
	var dirs []fileHeader
	for first := true; ; first = false {
		if !first {
			if t, b, err = p.recv(); err != nil {
				return err
			}
		}
		if t == fDone {
			break
		}
		if t != fFile {
			return p.fail(fmt.Errorf("%w: frame %d, want an entry", ErrProtocol, t))
		}
		h, err := decodeFileHeader(b)
		if err != nil {
			return p.fail(err)
		}
		name := filepath.FromSlash(h.name)
		if !filepath.IsLocal(name) || (h.kind == kindLink && !filepath.IsLocal(filepath.FromSlash(h.linkTarget))) {
			return p.fail(fmt.Errorf("%w: %q", ErrUnsafePath, h.name))
		}
		if err := receiveEntry(p, root, name, h, o, st, asRoot); err != nil {
			return err
		}
		if h.kind == kindDir {
			dirs = append(dirs, h)
		}
	}
	// Directories last, deepest first, so adding their entries did not
	// change their times.
	for i := len(dirs) - 1; i >= 0; i-- {
		h := dirs[i]
		name := filepath.FromSlash(h.name)
		if asRoot {
			if err := root.Lchown(name, int(h.uid), int(h.gid)); err != nil {
				return p.fail(fmt.Errorf("transfer: %w", err))
			}
		}
		if err := root.Chmod(name, fileMode(h.mode)); err != nil {
			return p.fail(fmt.Errorf("transfer: %w", err))
		}
		mt := time.Unix(0, h.mtimeNs)
		if err := root.Chtimes(name, mt, mt); err != nil {
			return p.fail(fmt.Errorf("transfer: %w", err))
		}
	}
	syncDir(root)
	if err := p.send(fResult, []byte{1}); err != nil {
		return err
	}
	return p.flush()
}

func receiveEntry(p *peer, root *os.Root, name string, h fileHeader, o *Options, st *Stats, asRoot bool) error {
	wrap := func(err error) error { return p.fail(fmt.Errorf("transfer: %s: %w", h.name, err)) }
	switch h.kind {
	case kindDir:
		if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return wrap(err)
		}
		if fi, err := root.Lstat(name); err != nil || !fi.IsDir() {
			return wrap(fmt.Errorf("not a directory"))
		}
	case kindFile:
		st.BytesTotal += h.size
		if err := receiveFile(p, root, name, h, o, st); err != nil {
			return fmt.Errorf("transfer: %s: %w", h.name, err)
		}
		st.Files++
	case kindSymlink:
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(err)
		}
		if err := root.Symlink(h.link, name); err != nil {
			return wrap(err)
		}
		if asRoot {
			if err := root.Lchown(name, int(h.uid), int(h.gid)); err != nil {
				return wrap(err)
			}
		}
	case kindLink:
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(err)
		}
		if err := root.Link(filepath.FromSlash(h.linkTarget), name); err != nil {
			return wrap(err)
		}
	default:
		return p.fail(fmt.Errorf("%w: entry kind %d", ErrProtocol, h.kind))
	}
	return nil
}
