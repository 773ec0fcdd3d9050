// Package redisconn holds the settings every Redis client of the platform
// is made with.
//
// The one that matters: go-redis ignores a call's context deadline for its
// socket reads and writes unless ContextTimeoutEnabled is set, and waits
// ReadTimeout (3 s) instead, retried up to MaxRetries times. The platform's
// Redis callers bound their calls with a context (a rate limit 200 ms, a
// session 500 ms, every request its deadline) so that a Redis that stops
// answering costs that bound and no more; without the setting a hung Redis
// held every request for seconds.
package redisconn

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Configure sets the platform's settings on o and returns it.
func Configure(o *redis.Options) *redis.Options {
	o.ContextTimeoutEnabled = true
	return o
}

// ParseURL parses a redis:// or rediss:// URL (SWA_REDIS_URL) into
// configured options. The error leaves the URL out: it may hold a
// password.
func ParseURL(raw string) (*redis.Options, error) {
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis: bad URL")
	}
	return Configure(o), nil
}

// New returns a client for raw.
func New(raw string) (*redis.Client, error) {
	o, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(o), nil
}
