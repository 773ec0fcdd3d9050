package tlsserve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// RedisStorage is a certmagic.Storage in Redis, so every data-plane replica
// shares the certificates, the ACME account and the locks that make one
// replica obtain a certificate while the others wait for it.
//
// Each key is a hash {prefix}certmagic:k:{key} with the value ("v") and its
// modification time in Unix nanoseconds ("m"); the set {prefix}certmagic:keys
// indexes every key, so List and the directory half of Stat and Exists never
// scan the keyspace. A lock is {prefix}certmagic:lock:{name}, set with NX and
// a lease (LockTTL) that its holder renews every LockTTL/3 until Unlock; a
// replica that dies holding a lock frees it when the lease runs out.
type RedisStorage struct {
	Redis  *redis.Client
	Prefix string // starts every key, e.g. "swa:"
	// LockTTL is the lease of a lock (default 1 minute).
	LockTTL time.Duration
	// LockPoll is how often a waiting Lock retries (default 250ms).
	LockPoll time.Duration

	mu     sync.Mutex
	leases map[string]*lease
}

type lease struct {
	token string
	stop  chan struct{}
	done  chan struct{}
}

var _ certmagic.Storage = (*RedisStorage)(nil)

func (s *RedisStorage) dataKey(key string) string { return s.Prefix + "certmagic:k:" + key }
func (s *RedisStorage) indexKey() string          { return s.Prefix + "certmagic:keys" }
func (s *RedisStorage) lockKey(name string) string {
	return s.Prefix + "certmagic:lock:" + name
}

func (s *RedisStorage) ttl() time.Duration {
	if s.LockTTL > 0 {
		return s.LockTTL
	}
	return time.Minute
}

func (s *RedisStorage) poll() time.Duration {
	if s.LockPoll > 0 {
		return s.LockPoll
	}
	return 250 * time.Millisecond
}

// clean normalises a certmagic key: slash-separated, no leading or
// trailing slash.
func clean(key string) string { return strings.Trim(path.Clean("/"+key), "/") }

// Store writes value at key and indexes it, in one transaction.
func (s *RedisStorage) Store(ctx context.Context, key string, value []byte) error {
	key = clean(key)
	if key == "" {
		return errors.New("tlsserve: empty storage key")
	}
	_, err := s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.dataKey(key), "v", value, "m", strconv.FormatInt(time.Now().UnixNano(), 10))
		p.SAdd(ctx, s.indexKey(), key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("tlsserve: store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *RedisStorage) Load(ctx context.Context, key string) ([]byte, error) {
	key = clean(key)
	v, err := s.Redis.HGet(ctx, s.dataKey(key), "v").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("tlsserve: load %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("tlsserve: load %s: %w", key, err)
	}
	return v, nil
}

// under lists the indexed keys equal to dir or below it.
func (s *RedisStorage) under(ctx context.Context, dir string) ([]string, error) {
	all, err := s.Redis.SMembers(ctx, s.indexKey()).Result()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range all {
		if dir == "" || k == dir || strings.HasPrefix(k, dir+"/") {
			out = append(out, k)
		}
	}
	return out, nil
}

// Delete removes key, or every key under it when it is a directory; a
// missing key is fs.ErrNotExist.
func (s *RedisStorage) Delete(ctx context.Context, key string) error {
	key = clean(key)
	keys, err := s.under(ctx, key)
	if err != nil {
		return fmt.Errorf("tlsserve: delete %s: %w", key, err)
	}
	if len(keys) == 0 {
		return fmt.Errorf("tlsserve: delete %s: %w", key, fs.ErrNotExist)
	}
	_, err = s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, s.dataKey(k))
			p.SRem(ctx, s.indexKey(), k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tlsserve: delete %s: %w", key, err)
	}
	return nil
}

// Exists reports whether key is a stored value or a directory of them.
func (s *RedisStorage) Exists(ctx context.Context, key string) bool {
	keys, err := s.under(ctx, clean(key))
	return err == nil && len(keys) > 0
}

// List returns the keys directly under dir (recursive: every key below it),
// directories included as their own key when not recursive.
func (s *RedisStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = clean(dir)
	keys, err := s.under(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: list %s: %w", dir, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		if k == dir {
			continue // a value, not a directory
		}
		rest := k
		if dir != "" {
			rest = strings.TrimPrefix(k, dir+"/")
		}
		if !recursive {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[:i]
			}
		}
		name := path.Join(dir, rest)
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tlsserve: list %s: %w", dir, fs.ErrNotExist)
	}
	return out, nil
}

// Stat describes key: a value with its size and modification time, or a
// directory (IsTerminal false).
func (s *RedisStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = clean(key)
	h, err := s.Redis.HGetAll(ctx, s.dataKey(key)).Result()
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("tlsserve: stat %s: %w", key, err)
	}
	if v, ok := h["v"]; ok {
		ns, _ := strconv.ParseInt(h["m"], 10, 64)
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, ns), Size: int64(len(v)), IsTerminal: true}, nil
	}
	keys, err := s.under(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("tlsserve: stat %s: %w", key, err)
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("tlsserve: stat %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// renew extends a lease only while it still holds the caller's token.
var renew = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)

// release deletes a lock only while it still holds the caller's token.
var release = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Lock takes the named lock, waiting (polling) while another holder has it,
// until ctx ends. The lease is renewed in the background until Unlock.
func (s *RedisStorage) Lock(ctx context.Context, name string) error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := s.lockKey(name)
	for {
		ok, err := s.Redis.SetNX(ctx, key, token, s.ttl()).Result()
		if err != nil {
			return fmt.Errorf("tlsserve: lock %s: %w", name, err)
		}
		if ok {
			break
		}
		t := time.NewTimer(s.poll())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("tlsserve: lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
	l := &lease{token: token, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	if s.leases == nil {
		s.leases = map[string]*lease{}
	}
	s.leases[name] = l
	s.mu.Unlock()
	go s.keep(name, l)
	return nil
}

// keep renews l every third of the lease until it is stopped or lost.
func (s *RedisStorage) keep(name string, l *lease) {
	defer close(l.done)
	key := s.lockKey(name)
	tick := time.NewTicker(s.ttl() / 3)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.ttl()/3)
			n, err := renew.Run(ctx, s.Redis, []string{key}, l.token, s.ttl().Milliseconds()).Int()
			cancel()
			if err == nil && n == 0 {
				// The lease ran out and someone else may hold the lock
				// now: forget it, so Unlock cannot touch theirs.
				s.mu.Lock()
				if s.leases[name] == l {
					delete(s.leases, name)
				}
				s.mu.Unlock()
				return
			}
		}
	}
}

// Unlock releases a lock this storage holds; the lock is left alone if its
// lease ran out and another holder took it.
func (s *RedisStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.leases[name]
	delete(s.leases, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("tlsserve: unlock %s: not held", name)
	}
	close(l.stop)
	<-l.done
	if err := release.Run(ctx, s.Redis, []string{s.lockKey(name)}, l.token).Err(); err != nil {
		return fmt.Errorf("tlsserve: unlock %s: %w", name, err)
	}
	return nil
}
