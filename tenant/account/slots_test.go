package account

import (
	"testing"
	"time"
)

// A hash waits for a free argon2 slot: with every slot taken it does not
// run, and it runs once one is given back.
func TestArgon2WaitsForASlot(t *testing.T) {
	if cap(argon2Slots) < 1 {
		t.Fatal("no argon2 slots")
	}
	for range cap(argon2Slots) {
		argon2Slots <- struct{}{}
	}
	h := &Hasher{p: Argon2Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
	done := make(chan error, 1)
	go func() { _, err := h.Hash("correct horse battery"); done <- err }()
	select {
	case <-done:
		t.Fatal("a hash ran while every slot was taken")
	case <-time.After(300 * time.Millisecond):
	}
	<-argon2Slots
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the hash never ran after a slot was given back")
	}
	for range cap(argon2Slots) - 1 {
		<-argon2Slots
	}
}
