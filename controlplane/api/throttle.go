package api

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Failed-authentication throttling. The state is in memory: the control
// plane is one small process (see recoverOperations), so a shared store
// would buy nothing; a restart forgets the counts, which costs an attacker
// a restart per ten guesses.
const (
	// authFailureLimit failed bearer tokens per client and window are
	// checked; further requests get 429 without their token being looked at.
	authFailureLimit  = 10
	authFailureWindow = time.Minute
	// authFailureClients caps the clients tracked at once, so an attacker
	// rotating addresses cannot grow the table without limit; past it the
	// client whose window started first is forgotten.
	authFailureClients = 10_000
)

// failureLimiter counts failed authentications per client in fixed windows
// that start at the client's first attempt. A request takes a pending slot
// before its token is checked; a wrong token turns it into a failure, any
// other outcome gives it back. Once a client has failed in a window, its
// failures and pending checks together stay under the limit, so concurrent
// guesses cannot overrun it; a client that has not failed may run any
// number of requests at once.
type failureLimiter struct {
	limit  int
	window time.Duration
	max    int // entries kept at most
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*list.Element // of *failures
	order   *list.List               // *failures, oldest window start first
}

type failures struct {
	key     string
	start   time.Time
	failed  int
	pending int
}

// ticket is a pending slot: what release and fail need to find it.
type ticket struct {
	key   string
	start time.Time
}

func newFailureLimiter(limit int, window time.Duration, max int, now func() time.Time) *failureLimiter {
	return &failureLimiter{limit: limit, window: window, max: max, now: now,
		clients: map[string]*list.Element{}, order: list.New()}
}

// reserve takes a pending slot for key. When key has no room left in its
// window it returns ok false and how long until the window ends.
func (l *failureLimiter) reserve(key string) (t ticket, retryAfter time.Duration, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	e, found := l.clients[key]
	if !found {
		for l.order.Len() >= l.max {
			l.remove(l.order.Front())
		}
		e = l.order.PushBack(&failures{key: key, start: now})
		l.clients[key] = e
	}
	f := e.Value.(*failures)
	if f.failed >= l.limit || (f.failed > 0 && f.failed+f.pending >= l.limit) {
		return ticket{}, f.start.Add(l.window).Sub(now), false
	}
	f.pending++
	return ticket{key: key, start: f.start}, 0, true
}

// release gives back a pending slot: the token was good, or the check
// failed for another reason than a wrong token.
func (l *failureLimiter) release(t ticket) { l.settle(t, false) }

// fail turns a pending slot into a failure: the token was wrong.
func (l *failureLimiter) fail(t ticket) { l.settle(t, true) }

func (l *failureLimiter) settle(t ticket, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.clients[t.key]
	if !ok {
		return // expired or evicted meanwhile
	}
	f := e.Value.(*failures)
	if !f.start.Equal(t.start) || f.pending == 0 {
		return // the slot belonged to an ended window
	}
	f.pending--
	if failed {
		f.failed++
	}
	if f.failed == 0 && f.pending == 0 {
		l.remove(e)
	}
}

// expire drops the entries whose window has ended. The list is ordered by
// window start, so it stops at the first live one.
func (l *failureLimiter) expire(now time.Time) {
	for e := l.order.Front(); e != nil; e = l.order.Front() {
		if now.Sub(e.Value.(*failures).start) < l.window {
			return
		}
		l.remove(e)
	}
}

func (l *failureLimiter) remove(e *list.Element) {
	delete(l.clients, e.Value.(*failures).key)
	l.order.Remove(e)
}

// size returns the number of clients tracked.
func (l *failureLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// usageNotes remembers when each token's last_used_at was last written, so a
// busy token costs one write per interval instead of one per request.
type usageNotes struct {
	interval time.Duration
	max      int
	now      func() time.Time

	mu      sync.Mutex
	written map[[32]byte]time.Time // token hash -> last write
}

const (
	// lastUsedInterval is how stale a token's last_used_at may get.
	lastUsedInterval = time.Minute
	// usageNotesMax caps the tokens noted; admin tokens are few.
	usageNotesMax = 1024
)

func newUsageNotes(interval time.Duration, max int, now func() time.Time) *usageNotes {
	return &usageNotes{interval: interval, max: max, now: now, written: map[[32]byte]time.Time{}}
}

// claim reports whether this request should write last_used_at for the
// token hashed h, and if so records the write now, so concurrent requests
// of a burst do not all write. A failed write calls unclaim.
func (n *usageNotes) claim(h [32]byte) bool {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if last, ok := n.written[h]; ok && now.Sub(last) < n.interval {
		return false
	}
	if len(n.written) >= n.max {
		for k, last := range n.written {
			if now.Sub(last) >= n.interval {
				delete(n.written, k)
			}
		}
	}
	if len(n.written) < n.max {
		n.written[h] = now
	}
	// When still full, the token goes unnoted and simply writes again next
	// time: more writes, never a missed one.
	return true
}

func (n *usageNotes) unclaim(h [32]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.written, h)
}

// clientAddr is the caller's address as the data plane computes it (see
// server.Proxies.ClientAddr): a guesser cannot pick a new one per request by
// writing X-Forwarded-For.
func (s *Server) clientAddr(c *fiber.Ctx) netip.Addr {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return s.trusted.ClientAddr(peer, c.Request().Header.Peek(fiber.HeaderXForwardedFor))
}

// throttleKey is what failures are counted by: the address, or for IPv6 its
// /64, since one host is usually given a whole /64 to pick addresses from.
func throttleKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
