package redisconn_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/platform/redisconn"
)

// hangingRedis accepts connections and never answers, as a Redis that has
// stopped (or a network path that drops everything) does.
func hangingRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}

// A call's context bounds it even when the socket stays silent: with
// go-redis' defaults the read would wait the client's ReadTimeout (a
// minute here) instead.
func TestContextBoundsSilentRedis(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(redisconn.Configure(&redis.Options{Addr: hangingRedis(t), ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxRetries: -1}))
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := rdb.Get(ctx, "k").Err()
	took := time.Since(start)
	if err == nil {
		t.Fatal("GET on a silent Redis succeeded")
	}
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("GET on a silent Redis: %v, want a timeout", err)
	}
	// Far under the minute of ReadTimeout: the context's 100 ms ended it.
	if took > 10*time.Second {
		t.Errorf("GET on a silent Redis took %v", took)
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	o, err := redisconn.ParseURL("redis://:secret@127.0.0.1:6380/2")
	if err != nil {
		t.Fatal(err)
	}
	if !o.ContextTimeoutEnabled || o.Addr != "127.0.0.1:6380" || o.DB != 2 {
		t.Errorf("options %+v", o)
	}
	if _, err := redisconn.ParseURL("http://:secret@example.com"); err == nil {
		t.Error("an http URL was accepted")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}
