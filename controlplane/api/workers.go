package api

import (
	"sync"

	"github.com/google/uuid"
)

// job is one accepted operation: its record and what runs it.
type job struct {
	id   uuid.UUID
	kind string
	run  runFunc
}

// workers runs accepted operations, a fixed number at a time, from a queue
// of bounded length. A slot (a worker or a place in the queue) is taken
// before an operation is recorded, so one refused for want of room leaves
// nothing behind.
type workers struct {
	mu      sync.Mutex
	wake    *sync.Cond
	queue   []job
	taken   int // slots held: queued, running, or about to be queued
	limit   int // workers plus queue length
	closing bool
	wg      sync.WaitGroup
}

// startWorkers starts n workers that hand each job to exec, with room for
// queue more jobs waiting.
func startWorkers(n, queue int, exec func(job)) *workers {
	w := &workers{limit: n + queue}
	w.wake = sync.NewCond(&w.mu)
	for range n {
		w.wg.Go(func() {
			for {
				j, ok := w.next()
				if !ok {
					return
				}
				exec(j)
				w.release()
			}
		})
	}
	return w
}

// reserve takes a slot; false when every one is taken or the pool is closing.
func (w *workers) reserve() (ok, closing bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return false, true
	}
	if w.taken >= w.limit {
		return false, false
	}
	w.taken++
	return true, false
}

// release gives back a slot: a job finished, or a reservation was not used.
func (w *workers) release() {
	w.mu.Lock()
	w.taken--
	w.mu.Unlock()
}

// push queues a job in a slot reserved for it.
func (w *workers) push(j job) {
	w.mu.Lock()
	w.queue = append(w.queue, j)
	w.mu.Unlock()
	w.wake.Signal()
}

// resume queues a job that a previous process accepted: it had its slot
// there, so it is taken here even beyond the limit.
func (w *workers) resume(j job) {
	w.mu.Lock()
	w.taken++
	w.queue = append(w.queue, j)
	w.mu.Unlock()
	w.wake.Signal()
}

// next waits for a job; false once the pool is closing. Jobs still queued
// then stay recorded as queued, for the next process to run.
func (w *workers) next() (job, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) == 0 && !w.closing {
		w.wake.Wait()
	}
	if w.closing {
		return job{}, false
	}
	j := w.queue[0]
	w.queue = w.queue[1:]
	return j, true
}

// close stops the workers taking jobs; wait then waits for the running ones.
func (w *workers) close() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.wake.Broadcast()
}

func (w *workers) wait() { w.wg.Wait() }
