package images

import (
	"context"
	"errors"
	"io"
)

// streamCheck checks an upload on a goroutine of its own while it is
// written: Upload writes every byte to it as well as to the file. Up to
// checkBuffer chunks wait between the two, so that neither waits for the
// other at every write; nothing more is held.
type streamCheck struct {
	chunks chan []byte
	// endErr is what the check reads once chunks is closed: io.EOF, or
	// errUploadEnded when the upload failed.
	endErr error
	done   chan struct{} // closed when the check has returned
	err    error         // the check's verdict, set before done is closed
	ended  bool
}

// checkBuffer is how many written chunks (32 KiB each, as io.Copy
// writes) may wait for the check.
const checkBuffer = 64

// checkRefused is what writing to a streamCheck returns once the check
// has refused the upload; err is its verdict.
type checkRefused struct{ err error }

func (e *checkRefused) Error() string { return "images: upload refused: " + e.err.Error() }

var (
	// errUploadEnded ends a check whose upload failed for another reason.
	errUploadEnded = errors.New("images: the upload ended")
	// errCheckEnded is a check that returned before its input ended: a
	// check must read to the end unless it refuses.
	errCheckEnded = errors.New("images: the check ended before the upload")
)

// startCheck runs check on what is written to the returned streamCheck.
func startCheck(ctx context.Context, check func(context.Context, io.Reader) error) *streamCheck {
	c := &streamCheck{chunks: make(chan []byte, checkBuffer), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = check(ctx, &chunkReader{c: c})
	}()
	return c
}

// Write hands a copy of p to the check; it fails with a *checkRefused
// once the check has refused the upload.
func (c *streamCheck) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b := append([]byte(nil), p...)
	select {
	case c.chunks <- b:
		return len(p), nil
	case <-c.done:
		if c.err == nil {
			return 0, errCheckEnded
		}
		return 0, &checkRefused{c.err}
	}
}

// wait ends the input and returns the check's verdict.
func (c *streamCheck) wait() error { return c.end(io.EOF) }

// abort ends a check whose upload failed; it does nothing after wait.
func (c *streamCheck) abort() { _ = c.end(errUploadEnded) }

func (c *streamCheck) end(endErr error) error {
	if !c.ended {
		c.ended = true
		c.endErr = endErr
		close(c.chunks)
		<-c.done
	}
	return c.err
}

// chunkReader is the check's side of a streamCheck.
type chunkReader struct {
	c   *streamCheck
	cur []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		b, ok := <-r.c.chunks
		if !ok {
			return 0, r.c.endErr
		}
		r.cur = b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}
