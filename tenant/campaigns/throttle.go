package campaigns

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/platform/directory"
)

// A Throttle shares a tenant's campaign rate among every replica, so the
// rate is the tenant's whatever the number of replicas sending.
type Throttle interface {
	// Take grants up to want sends of the tenant's campaigns out of budget
	// for the window holding now (see window). Zero means the window is
	// spent: wait for the next one.
	Take(ctx context.Context, t *directory.Tenant, budget, want int, window time.Duration) (int, error)
}

// window is the throttle's unit for rate mails a second: one second
// holding rate mails, or, below one a second, the span holding one.
func window(rate float64) (budget int, span time.Duration) {
	if rate >= 1 {
		return int(rate), time.Second
	}
	secs := math.Ceil(1 / rate)
	return 1, time.Duration(secs) * time.Second
}

// RedisThrottle counts each tenant's grants per window in Redis: one
// INCRBY a window and replica, so replicas never wait on each other.
type RedisThrottle struct {
	Redis  *redis.Client
	Prefix string
	// Now is the clock (time.Now when nil); tests hold it still.
	Now func() time.Time
}

func (r *RedisThrottle) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Take adds want to the window's count and grants what of it fits in
// budget: of replicas asking at once, those first in Redis's order get
// their share and the rest what is left, never more than budget in all.
func (r *RedisThrottle) Take(ctx context.Context, t *directory.Tenant, budget, want int, span time.Duration) (int, error) {
	if want <= 0 || budget <= 0 {
		return 0, nil
	}
	slot := r.now().UnixNano() / int64(span)
	key := r.Prefix + "campaign-rate:" + strconv.FormatInt(t.ID, 10) + ":" + strconv.FormatInt(slot, 10)
	pipe := r.Redis.TxPipeline()
	incr := pipe.IncrBy(ctx, key, int64(want))
	pipe.Expire(ctx, key, 2*span+time.Second)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	before := incr.Val() - int64(want)
	return int(max(0, min(int64(want), int64(budget)-before))), nil
}

// untilNext is how long until the window after the one holding now.
func untilNext(now time.Time, span time.Duration) time.Duration {
	return span - time.Duration(now.UnixNano()%int64(span))
}
