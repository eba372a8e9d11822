package transfer

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Wire format: every message is a frame of one type byte, a big-endian
// uint32 payload length and the payload.
const (
	magic           = "NVXF"
	protocolVersion = 2
	maxFrame        = 64 << 20
)

// Frame types.
const (
	fHello  byte = 1  // magic, version u16, nonce[32] (+ receiver: mac[32])
	fAuth   byte = 2  // sender's mac[32]
	fError  byte = 3  // text: the peer gives up
	fFile   byte = 4  // header of one file (see fileHeader)
	fHave   byte = 5  // receiver: src u16, first u64, then the hashes of consecutive sub-blocks
	fReady  byte = 6  // receiver: end of its hashes
	fHole   byte = 7  // len u64: zeros
	fBlock  byte = 8  // one block: nops, ops (see opLiteral…), flags (1: zstd), literal length, literal bytes
	fEnd    byte = 12 // digest[16]
	fResult byte = 13 // ok byte, text
	fDone   byte = 14 // tree mode: no more entries
)

// countingConn counts bytes both ways and rate-limits writes.
type countingConn struct {
	net.Conn
	r, w    atomic.Int64
	limiter *rate.Limiter
	ctx     context.Context
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.limiter == nil {
		n, err := c.Conn.Write(p)
		c.w.Add(int64(n))
		return n, err
	}
	written := 0
	for written < len(p) {
		chunk := min(len(p)-written, c.limiter.Burst())
		if err := c.limiter.WaitN(c.ctx, chunk); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p[written : written+chunk])
		written += n
		c.w.Add(int64(n))
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// peer reads and writes frames on a connection.
type peer struct {
	conn *countingConn
	br   *bufio.Reader
	bw   *bufio.Writer
	hdr  [5]byte
	buf  []byte
}

func newPeer(ctx context.Context, c net.Conn, bytesPerSec float64) *peer {
	cc := &countingConn{Conn: c, ctx: ctx}
	if bytesPerSec > 0 {
		burst := int(min(max(bytesPerSec/20, 64<<10), 4<<20))
		cc.limiter = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
	}
	return &peer{conn: cc, br: bufio.NewReaderSize(cc, 256<<10), bw: bufio.NewWriterSize(cc, 256<<10)}
}

// send writes one frame of the given payload parts (buffered; call flush).
func (p *peer) send(typ byte, parts ...[]byte) error {
	n := 0
	for _, b := range parts {
		n += len(b)
	}
	if n > maxFrame {
		return fmt.Errorf("transfer: frame of %d bytes too large", n)
	}
	p.hdr[0] = typ
	binary.BigEndian.PutUint32(p.hdr[1:], uint32(n))
	if _, err := p.bw.Write(p.hdr[:]); err != nil {
		return err
	}
	for _, b := range parts {
		if _, err := p.bw.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (p *peer) flush() error { return p.bw.Flush() }

// recv reads one frame. The payload is valid until the next recv. An fError
// frame from the peer becomes an error.
func (p *peer) recv() (byte, []byte, error) {
	if _, err := io.ReadFull(p.br, p.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(p.hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, n)
	}
	if cap(p.buf) < int(n) {
		p.buf = make([]byte, n)
	}
	b := p.buf[:n]
	if _, err := io.ReadFull(p.br, b); err != nil {
		return 0, nil, err
	}
	if p.hdr[0] == fError {
		return 0, nil, fmt.Errorf("transfer: peer: %s", b)
	}
	return p.hdr[0], b, nil
}

// expect reads one frame of the given type.
func (p *peer) expect(typ byte) ([]byte, error) {
	t, b, err := p.recv()
	if err != nil {
		return nil, err
	}
	if t != typ {
		return nil, fmt.Errorf("%w: frame %d, want %d", ErrProtocol, t, typ)
	}
	return b, nil
}

// fail tells the peer why this side gives up (best effort) and returns err.
func (p *peer) fail(err error) error {
	// The peer may be busy writing rather than reading: do not wait for it.
	_ = p.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = p.send(fError, []byte(err.Error()))
	_ = p.flush()
	return err
}

func mac(token []byte, role byte, nonceS, nonceR []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte{role})
	m.Write(nonceS)
	m.Write(nonceR)
	return m.Sum(nil)
}

func hello(nonce []byte) []byte {
	b := append([]byte(magic), 0, protocolVersion)
	return append(b, nonce...)
}

func parseHello(b []byte) (nonce, rest []byte, err error) {
	if len(b) < 6+32 || string(b[:4]) != magic {
		return nil, nil, fmt.Errorf("%w: not a transfer peer", ErrProtocol)
	}
	if v := binary.BigEndian.Uint16(b[4:6]); v != protocolVersion {
		return nil, nil, fmt.Errorf("%w: protocol version %d, want %d", ErrProtocol, v, protocolVersion)
	}
	return b[6:38], b[38:], nil
}

// handshakeSender runs the sender's side of the mutual authentication: the
// receiver proves itself first, so a sender never talks to an impostor.
func (p *peer) handshakeSender(token []byte) error {
	if len(token) == 0 {
		return fmt.Errorf("%w: no token", ErrAuth)
	}
	nonceS := make([]byte, 32)
	_, _ = rand.Read(nonceS)
	if err := p.send(fHello, hello(nonceS)); err != nil {
		return err
	}
	if err := p.flush(); err != nil {
		return err
	}
	b, err := p.expect(fHello)
	if err != nil {
		return err
	}
	nonceR, rest, err := parseHello(b)
	if err != nil {
		return p.fail(err)
	}
	nonceR = append([]byte(nil), nonceR...)
	if len(rest) != 32 || !hmac.Equal(rest, mac(token, 'R', nonceS, nonceR)) {
		return p.fail(ErrAuth)
	}
	if err := p.send(fAuth, mac(token, 'S', nonceS, nonceR)); err != nil {
		return err
	}
	return p.flush()
}

func (p *peer) handshakeReceiver(token []byte) error {
	if len(token) == 0 {
		return fmt.Errorf("%w: no token", ErrAuth)
	}
	b, err := p.expect(fHello)
	if err != nil {
		return err
	}
	nonceS, _, err := parseHello(b)
	if err != nil {
		return p.fail(err)
	}
	nonceS = append([]byte(nil), nonceS...)
	nonceR := make([]byte, 32)
	_, _ = rand.Read(nonceR)
	if err := p.send(fHello, hello(nonceR), mac(token, 'R', nonceS, nonceR)); err != nil {
		return err
	}
	if err := p.flush(); err != nil {
		return err
	}
	b, err = p.expect(fAuth)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	if !hmac.Equal(b, mac(token, 'S', nonceS, nonceR)) {
		return p.fail(ErrAuth)
	}
	return nil
}
