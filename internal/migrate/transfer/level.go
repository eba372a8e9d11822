package transfer

import (
	"sync/atomic"
	"time"
)

// levelCtl chooses the zstd level by feedback, as `zstd --adapt` does: the
// writer, which puts the compressed blocks on the wire in order, measures
// over each window how long it waited for the link (blocked writing) and
// how long for the compressors (no block ready). Waiting for the link means
// CPU to spare: compress harder. Waiting for the compressors means the
// link has room: compress faster, down to sending raw blocks. A change
// takes effect only on blocks compressed after it, so the controller holds
// each level for a while before judging it; and a level left at once for
// the one it was reached from is not tried again for a while, longer each
// time, so that a machine short of CPU does not make it flap.
type levelCtl struct {
	fixed bool
	cur   atomic.Int32
	max   int

	winStart        time.Time
	waitOut, waitIn time.Duration
	blocks          int
	hold            int // windows to wait before the next change
	windows         int // windows judged so far
	since, from     int // when the current level was reached, and from which
	ban, penalty    [5]int
	bytes, wire     int64
	rawVotes        int
	link            float64    // wire bytes per second seen while the link was the bottleneck
	thr             [5]float64 // source bytes per second last seen at each level
	now             func() time.Time
}

// Window of the controller and the fraction of it a side must wait to
// count as the bottleneck.
const (
	levelWindow    = 100 * time.Millisecond
	levelWindowMin = 4 // blocks
	levelBusy      = 0.3
)

func newLevelCtl(level int) *levelCtl {
	c := &levelCtl{max: 4, now: time.Now, from: -1, hold: 1}
	c.winStart = c.now()
	switch {
	case level < 0:
		c.fixed = true
		c.cur.Store(0)
	case level > 0:
		c.fixed = true
		c.cur.Store(int32(min(level, 4)))
	default:
		c.cur.Store(1)
	}
	return c
}

// level is the level for the next block: 0 is no compression, 1 to 4 are
// zstd's fastest, default, better and best.
func (c *levelCtl) level() int { return int(c.cur.Load()) }

// observe records one block put on the wire by the writer, which waited in
// for it to be ready and out to write it. Only the writer calls it.
func (c *levelCtl) observe(n, wire int64, in, out time.Duration) {
	if c.fixed {
		return
	}
	c.waitIn += in
	c.waitOut += out
	c.bytes += n
	c.wire += wire
	c.blocks++
	el := c.now().Sub(c.winStart)
	if el < levelWindow || c.blocks < levelWindowMin {
		return
	}
	c.decide(el)
	c.winStart, c.waitIn, c.waitOut, c.blocks, c.bytes, c.wire = c.now(), 0, 0, 0, 0, 0
}

func (c *levelCtl) decide(el time.Duration) {
	c.windows++
	cur := c.level()
	c.thr[cur] = float64(c.bytes) / el.Seconds()
	if c.waitOut > el/2 {
		c.link = float64(c.wire) / el.Seconds()
	}
	if c.hold > 0 {
		c.hold--
		return
	}
	l := cur
	busy := time.Duration(levelBusy * float64(el))
	switch {
	case c.waitOut > busy && c.waitOut > 2*c.waitIn && l < c.max:
		l++
		if cur > 0 && c.waitOut > el*8/10 && c.waitIn < el/20 {
			// Compressing, and far from using the CPU it has: two steps.
			l = min(l+1, c.max)
		}
	case c.waitIn > busy && c.waitIn > 2*c.waitOut && l > 1:
		l--
	case c.waitIn > el/2 && c.waitOut < el/10 && l == 1 && (c.link == 0 || c.link > 1.2*c.thr[1]):
		// Raw blocks only when compressing at the fastest level is clearly
		// what holds the transfer back, two windows in a row, and the link
		// is not known to be slower than the source moves now.
		if c.rawVotes++; c.rawVotes < 2 {
			return
		}
		l--
	default:
		c.rawVotes = 0
		return
	}
	c.rawVotes = 0
	if c.windows < c.ban[l] {
		return
	}
	if l == c.from && c.windows-c.since <= 4 {
		// Straight back: of the two levels, the one that moved less data
		// is not tried again for a while.
		worse := cur
		if c.thr[cur] > c.thr[l] {
			worse = l
		}
		c.penalty[worse] = min(max(4, 2*c.penalty[worse]), 256)
		c.ban[worse] = c.windows + c.penalty[worse]
		if worse == l {
			return
		}
	}
	c.from, c.since = cur, c.windows
	c.cur.Store(int32(l))
	c.hold = 1
}
