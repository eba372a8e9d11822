package transfer

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// levelCtl chooses the zstd level from measurements: the link's rate (bytes
// the writer pushed per second spent writing, the bandwidth limit included)
// and each level's compression speed per core and ratio. The expected
// throughput of level l is min(workers × speed_l, link ÷ ratio_l); level 0
// is no compression. Workers probe the neighbouring levels on a few blocks so
// their figures stay fresh.
type levelCtl struct {
	fixed   bool
	workers int
	cur     atomic.Int32

	mu        sync.Mutex
	in, out   [5]float64 // bytes in and out per level (decayed)
	dur       [5]float64 // seconds spent compressing per level (decayed)
	wireBytes float64
	wireSecs  float64
	last      time.Time
}

func newLevelCtl(level, workers int) *levelCtl {
	c := &levelCtl{workers: workers, last: time.Now()}
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

func (c *levelCtl) level() int { return int(c.cur.Load()) }

// probe returns the level a worker uses for its n-th job.
func (c *levelCtl) probe(n int) int {
	l := c.level()
	if c.fixed {
		return l
	}
	switch {
	case n%16 == 5 && l < 3:
		return l + 1
	case n%16 == 13 && l > 1:
		return l - 1
	case n%16 == 13 && l == 0:
		return 1
	}
	return l
}

func (c *levelCtl) observeCompress(level int, in, out int, d time.Duration) {
	c.mu.Lock()
	c.in[level] += float64(in)
	c.out[level] += float64(out)
	c.dur[level] += d.Seconds()
	c.mu.Unlock()
}

// observeWrite records n bytes written in d and, every so often, decides.
func (c *levelCtl) observeWrite(n int, d time.Duration) {
	if c.fixed {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wireBytes += float64(n)
	c.wireSecs += d.Seconds()
	if time.Since(c.last) < 150*time.Millisecond || c.wireBytes < 2<<20 {
		return
	}
	c.last = time.Now()
	c.decideLocked()
}

func (c *levelCtl) decideLocked() {
	link := math.Inf(1)
	if c.wireSecs > 0.001 {
		link = c.wireBytes / c.wireSecs
	}
	// Measured speed (bytes/s per core) and ratio, or priors relative to level 1.
	speed := [5]float64{0: 4e9, 1: 400e6}
	ratio := [5]float64{0: 1, 1: 0.5}
	prior := [5][2]float64{1: {1, 1}, 2: {0.55, 0.93}, 3: {0.2, 0.88}, 4: {0.05, 0.84}}
	for l := 1; l <= 4; l++ {
		if c.in[l] > 256<<10 && c.dur[l] > 0 {
			speed[l] = c.in[l] / c.dur[l]
			ratio[l] = c.out[l] / c.in[l]
		} else if l > 1 {
			speed[l] = speed[1] * prior[l][0]
			ratio[l] = ratio[1] * prior[l][1]
		}
	}
	cur := c.level()
	through := func(l int) float64 {
		return min(float64(c.workers)*speed[l], link/ratio[l])
	}
	best := cur
	for l := 0; l <= 3; l++ {
		if through(l) > through(best)*1.1 {
			best = l
		}
	}
	c.cur.Store(int32(best))
	// Decay so recent data dominates.
	for l := range c.in {
		c.in[l] /= 2
		c.out[l] /= 2
		c.dur[l] /= 2
	}
	c.wireBytes /= 2
	c.wireSecs /= 2
}
