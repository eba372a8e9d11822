package httpapi

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter is a token bucket per key (an IP, a user), with idle buckets
// dropped so a storm of distinct keys cannot grow it without bound.
type keyedLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// newKeyedLimiter returns a limiter of perSecond requests per key with a
// burst of twice that; nil when perSecond is 0 (no limit).
func newKeyedLimiter(perSecond float64) *keyedLimiter {
	if perSecond <= 0 {
		return nil
	}
	burst := int(math.Ceil(perSecond * 2))
	return &keyedLimiter{limit: rate.Limit(perSecond), burst: burst, max: 100000,
		buckets: make(map[string]*bucket)}
}

// allow takes a token for key. When none is left it returns false and how
// many whole seconds to wait.
func (k *keyedLimiter) allow(key string, now time.Time) (bool, int) {
	if k == nil {
		return true, 0
	}
	k.mu.Lock()
	b := k.buckets[key]
	if b == nil {
		if len(k.buckets) >= k.max || now.Sub(k.swept) > time.Minute {
			k.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	k.mu.Unlock()
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, int(math.Ceil(d.Seconds()))
	}
	return true, 0
}

// sweep drops buckets idle long enough to have refilled. The caller holds k.mu.
func (k *keyedLimiter) sweep(now time.Time) {
	k.swept = now
	idle := time.Duration(float64(k.burst)/float64(k.limit)*float64(time.Second)) + time.Second
	for key, b := range k.buckets {
		if now.Sub(b.last) > idle || len(k.buckets) >= k.max {
			delete(k.buckets, key)
		}
	}
}
