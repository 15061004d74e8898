package resilient

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func callDirect(fn func(Event), ev Event) { fn(ev) }

// startQueue runs a queue whose OnEvent is fn, and stops it when the test
// ends.
func startQueue(t *testing.T, fn func(Event)) *eventQueue {
	t.Helper()
	q := newEventQueue(fn)
	go q.run(callDirect)
	t.Cleanup(func() {
		q.shutdown()
		<-q.done
	})
	return q
}

// A shutdown from outside OnEvent returns once the events queued before it
// are delivered.
func TestEventQueueShutdownDelivers(t *testing.T) {
	var got []EventKind
	q := startQueue(t, func(ev Event) { got = append(got, ev.Kind) })
	for _, k := range []EventKind{EventReconnectStarted, EventReconnected, EventResumed} {
		q.push(Event{Kind: k})
	}
	q.shutdown()
	want := []EventKind{EventReconnectStarted, EventReconnected, EventResumed}
	if len(got) != len(want) {
		t.Fatalf("delivered before shutdown returned: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered before shutdown returned: %v, want %v", got, want)
		}
	}
	q.push(Event{Kind: EventReplayed})
	if len(got) != len(want) {
		t.Errorf("an event pushed after shutdown was delivered: %v", got)
	}
}

// A shutdown from inside OnEvent returns at once (waiting would wait on its
// own return), and the events queued behind it follow, in order, once
// OnEvent returns.
func TestEventQueueShutdownFromOnEvent(t *testing.T) {
	var q *eventQueue
	returned := make(chan struct{})
	delivered := make(chan EventKind, 3)
	q = startQueue(t, func(ev Event) {
		if ev.Kind == EventReconnected {
			q.push(Event{Kind: EventResumed}) // queued behind this call
			q.shutdown()
			close(returned)
		}
		delivered <- ev.Kind
	})
	q.push(Event{Kind: EventReconnected})
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown called from OnEvent did not return within 10s")
	}
	select {
	case <-q.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the queue did not stop within 10s of OnEvent's shutdown")
	}
	close(delivered)
	var got []EventKind
	for k := range delivered {
		got = append(got, k)
	}
	if len(got) != 2 || got[0] != EventReconnected || got[1] != EventResumed {
		t.Errorf("delivered %v, want [reconnected resumed]", got)
	}
}

// OnEvent of one client that stops another client's queue waits for that
// queue to stop: being inside some OnEvent is not being inside the other
// queue's.
func TestEventQueueShutdownOfAnotherQueue(t *testing.T) {
	b := startQueue(t, func(Event) {})
	stopped := make(chan bool, 1)
	a := startQueue(t, func(Event) {
		b.shutdown()
		select {
		case <-b.done:
			stopped <- true
		default:
			stopped <- false
		}
	})
	a.push(Event{Kind: EventReconnected})
	select {
	case ok := <-stopped:
		if !ok {
			t.Error("the other queue's shutdown returned before that queue stopped")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnEvent stopping another queue did not return within 10s")
	}
}

// A shutdown from another goroutine while OnEvent runs waits for that call
// and for the events queued behind it.
func TestEventQueueShutdownWaitsForRunningOnEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var delivered atomic.Int32
		q := newEventQueue(func(ev Event) {
			if ev.Kind == EventReconnectStarted {
				<-release
			}
			delivered.Add(1)
		})
		go q.run(callDirect)
		q.push(Event{Kind: EventReconnectStarted})
		q.push(Event{Kind: EventReconnected})
		synctest.Wait() // OnEvent runs, blocked on release
		returned := make(chan int32, 1)
		go func() {
			q.shutdown()
			returned <- delivered.Load()
		}()
		synctest.Wait() // and shutdown waits for the queue
		select {
		case n := <-returned:
			t.Fatalf("shutdown returned while OnEvent was running, with %d event(s) delivered", n)
		default:
		}
		close(release)
		if n := <-returned; n != 2 {
			t.Errorf("shutdown returned with %d event(s) delivered, want 2", n)
		}
	})
}
