package resilient

import (
	"reflect"
	"runtime"
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
	busy atomic.Bool   // an OnEvent call of this queue is in progress
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
	for {
		q.mu.Lock()
		batch, shut := q.q, q.shut
		q.q = nil
		q.mu.Unlock()
		for _, ev := range batch {
			q.busy.Store(true)
			deliverFrame(deliver, q.fn, ev)
			q.busy.Store(false)
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
	if q.busy.Load() && inDelivery() {
		return
	}
	<-q.done
}

// deliverFrame is the one frame through which every OnEvent call passes.
// Whether a call to Close comes from inside OnEvent is a property of the
// call chain, not of any value Close could be handed (OnEvent receives
// only an Event, and Close takes no arguments), so shutdown asks the call
// chain: [inDelivery] looks for this frame on the caller's stack. It must
// not be inlined, or its frame would not be there to find.
//
//go:noinline
func deliverFrame(deliver func(func(Event), Event), fn func(Event), ev Event) {
	deliver(fn, ev)
}

// deliverFrameEntry is the entry address of deliverFrame, computed once.
var deliverFrameEntry = sync.OnceValue(func() uintptr {
	return runtime.FuncForPC(reflect.ValueOf(deliverFrame).Pointer()).Entry()
})

// inDelivery reports whether the calling goroutine is inside a call of
// deliverFrame, that is inside OnEvent of some client. Together with the
// queue's busy flag it tells "OnEvent of this client called Close" (Close
// must not wait for the queue: it would wait on its own return) from
// "another goroutine called Close" (it waits). The one case it cannot tell
// apart is OnEvent of client A closing client B while B's own OnEvent is
// running: B's Close then returns without waiting, and B's queued events
// are still delivered, after it returns.
func inDelivery() bool {
	entry := deliverFrameEntry()
	var pcs [32]uintptr
	for skip := 2; ; {
		n := runtime.Callers(skip, pcs[:])
		for _, pc := range pcs[:n] {
			// pc is a return address: pc-1 lies inside the calling function.
			if f := runtime.FuncForPC(pc - 1); f != nil && f.Entry() == entry {
				return true
			}
		}
		if n < len(pcs) {
			return false
		}
		skip += n
	}
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
