package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// testStore runs the behaviour every backend shares. newName returns a name
// no other test uses.
func testStore(t *testing.T, s secrets.Store, newName func() string) {
	ctx := context.Background()

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		name := newName()
		if _, err := s.Get(ctx, name); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Get: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetVersion(ctx, name, 1); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("GetVersion: err = %v, want ErrNotFound", err)
		}
		vs, err := s.Versions(ctx, name)
		if err != nil || vs == nil || len(vs) != 0 {
			t.Errorf("Versions = %v, %v; want [], nil", vs, err)
		}
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("Delete of a missing secret: %v", err)
		}
	})

	t.Run("versions", func(t *testing.T) {
		t.Parallel()
		name := newName()
		values := [][]byte{
			[]byte(`{"db_password":"first-9f3a"}`),
			{0x00, 0xff, 0xfe, 0x80, 0x01}, // not UTF-8
			[]byte("third value ✓"),
		}
		for i, v := range values {
			got, err := s.Put(ctx, name, v)
			if err != nil {
				t.Fatalf("Put %d: %v", i+1, err)
			}
			if got != i+1 {
				t.Fatalf("Put %d returned version %d", i+1, got)
			}
		}
		got, err := s.Get(ctx, name)
		if err != nil || !bytes.Equal(got, values[2]) {
			t.Errorf("Get = %q, %v; want %q", got, err, values[2])
		}
		for i, v := range values {
			got, err := s.GetVersion(ctx, name, i+1)
			if err != nil || !bytes.Equal(got, v) {
				t.Errorf("GetVersion(%d) = %q, %v; want %q", i+1, got, err, v)
			}
		}
		for _, v := range []int{0, -1, 4, 1000} {
			if _, err := s.GetVersion(ctx, name, v); !errors.Is(err, secrets.ErrNotFound) {
				t.Errorf("GetVersion(%d): err = %v, want ErrNotFound", v, err)
			}
		}
		vs, err := s.Versions(ctx, name)
		if err != nil || !slices.Equal(vs, []int{1, 2, 3}) {
			t.Errorf("Versions = %v, %v; want [1 2 3]", vs, err)
		}

		if err := s.Delete(ctx, name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(ctx, name); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetVersion(ctx, name, 1); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("GetVersion after Delete: err = %v, want ErrNotFound", err)
		}
		if vs, err := s.Versions(ctx, name); err != nil || len(vs) != 0 {
			t.Errorf("Versions after Delete = %v, %v; want []", vs, err)
		}
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if v, err := s.Put(ctx, name, []byte("reborn")); err != nil || v != 1 {
			t.Errorf("Put after Delete = %d, %v; want version 1", v, err)
		}
	})

	t.Run("bundle", func(t *testing.T) {
		t.Parallel()
		name := secrets.TenantSecretName(strings.ReplaceAll(pgtest.RandomName("t"), "_", "-"))
		in := secrets.TenantBundle{DBPassword: "pw-4c1d", SessionKey: "c2Vzc2lvbg==", PreviousSessionKeys: []string{"b2xk"}, SMTPPort: 1025}
		if v, err := secrets.SaveBundle(ctx, s, name, in); err != nil || v != 1 {
			t.Fatalf("SaveBundle = %d, %v", v, err)
		}
		out, err := secrets.LoadBundle(ctx, s, name)
		if err != nil || !reflect.DeepEqual(out, in) {
			t.Errorf("LoadBundle = %#v, %v", out, err)
		}
		_ = s.Delete(ctx, name)
	})

	t.Run("empty value", func(t *testing.T) {
		t.Parallel()
		name := newName()
		if _, err := s.Put(ctx, name, nil); !errors.Is(err, secrets.ErrEmptyValue) {
			t.Errorf("Put(nil): err = %v, want ErrEmptyValue", err)
		}
		if _, err := s.Put(ctx, "", []byte("x")); err == nil {
			t.Error("Put with an empty name succeeded")
		}
		if _, err := s.Get(ctx, name); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Get after refused Put: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("sequential puts", func(t *testing.T) {
		t.Parallel()
		name := newName()
		for i := 1; i <= 12; i++ {
			v, err := s.Put(ctx, name, []byte{'v', byte('a' + i)})
			if err != nil || v != i {
				t.Fatalf("Put %d = %d, %v", i, v, err)
			}
		}
		got, err := s.Get(ctx, name)
		if err != nil || !bytes.Equal(got, []byte{'v', 'a' + 12}) {
			t.Errorf("Get = %q, %v", got, err)
		}
	})
}

// testConcurrentPuts checks that n concurrent Puts of one name yield n
// distinct versions, each holding the value its Put wrote.
func testConcurrentPuts(t *testing.T, s secrets.Store, name string, n int) {
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = map[int][]byte{}
		errs    []error
	)
	start := make(chan struct{}) // every Put begins at once
	for i := range n {
		wg.Go(func() {
			<-start
			value := []byte(pgtest.RandomName("concurrent-"))
			v, err := s.Put(ctx, name, value)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if prev, dup := written[v]; dup {
				t.Errorf("Put %d and another both returned version %d (%q, %q)", i, v, prev, value)
			}
			written[v] = value
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("Put: %v", err)
	}
	vs, err := s.Versions(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(vs, want) {
		t.Fatalf("Versions = %v, want 1..%d", vs, n)
	}
	for v, value := range written {
		got, err := s.GetVersion(ctx, name, v)
		if err != nil || !bytes.Equal(got, value) {
			t.Errorf("GetVersion(%d) = %q, %v; want %q", v, got, err, value)
		}
	}
	newest, err := s.Get(ctx, name)
	if err != nil || !bytes.Equal(newest, written[n]) {
		t.Errorf("Get = %q, %v; want version %d %q", newest, err, n, written[n])
	}
}

// noValue fails the test when an error's text contains a secret value.
func noValue(t *testing.T, err error, values ...[]byte) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range values {
		if strings.Contains(err.Error(), string(v)) {
			t.Errorf("error text %q contains the secret value", err)
		}
	}
}
