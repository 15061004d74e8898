package resilient

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// eventQueue delivers events to Options.OnEvent on one goroutine of its
// own, in the order they were emitted (grpc-go's callback serializer is the
// model). Emitting only appends to the queue: it never calls user code, so
// the client may emit while holding its locks or from inside a reconnect,
// and OnEvent may call any method of the client, Close included, without
// waiting on itself.
type eventQueue struct {
	fn   func(Event)
	mu   sync.Mutex
	q    []Event
	shut bool
	wake chan struct{} // buffered 1: something was queued, or shut
	done chan struct{} // closed when the delivering goroutine returns
	gid  atomic.Uint64 // the delivering goroutine's ID
}

func newEventQueue(fn func(Event)) *eventQueue {
	return &eventQueue{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// push queues ev; after shutdown it is dropped.
func (q *eventQueue) push(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	q.mu.Lock()
	if q.shut {
		q.mu.Unlock()
		return
	}
	q.q = append(q.q, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers events until shutdown, then the ones still queued.
func (q *eventQueue) run(deliver func(func(Event), Event)) {
	defer close(q.done)
	q.gid.Store(goroutineID())
	for {
		q.mu.Lock()
		batch, shut := q.q, q.shut
		q.q = nil
		q.mu.Unlock()
		for _, ev := range batch {
			deliver(q.fn, ev)
		}
		if len(batch) == 0 {
			if shut {
				return
			}
			<-q.wake
		}
	}
}

// shutdown stops the queue, and waits until the events queued before it
// are delivered, unless it is called from OnEvent itself (which would
// wait on its own return): then they are delivered once OnEvent returns.
func (q *eventQueue) shutdown() {
	q.mu.Lock()
	q.shut = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	if goroutineID() != q.gid.Load() {
		<-q.done
	}
}

// goroutineID returns the current goroutine's ID, read from its stack
// header ("goroutine 18 [running]:"). Go hides it on purpose; the queue
// needs it only to tell, in Close, whether Close was called by OnEvent.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// deliver calls OnEvent with ev, recovering a panic.
func (c *Client) deliver(fn func(Event), ev Event) {
	defer func() {
		// A bug in a metrics callback must not take down the process (it
		// runs on the client's goroutine); it is logged with its stack and
		// counted instead.
		if r := recover(); r != nil {
			c.stats.callbackPanics.Add(1)
			c.log.Error("OnEvent panicked; event dropped", zap.Stringer("event", ev.Kind),
				zap.Any("panic", r), zap.StackSkip("stack", 1))
		}
	}()
	fn(ev)
}

// eventFunc returns the function that receives events: the hook's, then
// the application's; nil when there is neither.
func eventFunc(hook, app func(Event)) func(Event) {
	switch {
	case hook == nil:
		return app
	case app == nil:
		return hook
	}
	return func(ev Event) {
		hook(ev)
		app(ev)
	}
}
