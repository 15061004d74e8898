// Package faultproxy is a TCP proxy that injects the network faults the
// fault suite needs between a client and a server: a black hole (nothing
// forwarded, connections held open, data held back until the heal, as a
// network that drops packets and TCP then retransmits), the same for the
// connections open now only (half-open connections a NAT forgot, while
// new ones go through), a reset of every connection (toxiproxy's
// reset_peer), and a slow close (a close that reaches the other side only
// after a delay: toxiproxy's slow_close).
//
// It is a few hundred lines instead of toxiproxy because toxiproxy's
// module brings a metrics and logging stack (prometheus, zerolog, mux)
// into the test build, and its timeout toxic drops the data it holds,
// which no TCP path does. Tests and the fault suite only.
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from its loopback address to upstream.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu            sync.Mutex
	open          chan struct{} // closed while traffic flows; a new one while black-holed
	slowClose     time.Duration
	conns         map[*pair]struct{}
	closed        chan struct{}
	wg            sync.WaitGroup
	upstreamBytes atomic.Int64
}

type pair struct {
	client, server net.Conn
	// hole, when set, is closed at Heal: the pair is black-holed alone
	// (BlackHoleExisting).
	hole chan struct{}
}

// Start listens on an OS-picked loopback port and forwards to upstream
// (host:port).
func Start(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	open := make(chan struct{})
	close(open)
	p := &Proxy{ln: ln, upstream: upstream, open: open, conns: map[*pair]struct{}{}, closed: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Forwarded returns how many bytes went from clients to upstream so far:
// a test waits for it to grow to know that a request reached the server.
func (p *Proxy) Forwarded() int64 { return p.upstreamBytes.Load() }

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// BlackHole stops forwarding: connections stay open and new ones are
// accepted, but no byte goes through, in either direction, and no
// connection to upstream is opened, until Heal.
func (p *Proxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// BlackHoleExisting black-holes the connections open now, as a NAT or a
// balancer that forgot them would (half-open connections), while new
// connections go through, until Heal.
func (p *Proxy) BlackHoleExisting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if c.hole == nil {
			c.hole = make(chan struct{})
		}
	}
}

// Heal ends a black hole: the bytes held back flow on.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if c.hole != nil {
			close(c.hole)
			c.hole = nil
		}
	}
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// SetSlowClose delays by d the close of one side of each connection after
// the other side closed (0: at once).
func (p *Proxy) SetSlowClose(d time.Duration) {
	p.mu.Lock()
	p.slowClose = d
	p.mu.Unlock()
}

// ResetPeers closes every connection open now, sending a TCP RST to the
// client.
func (p *Proxy) ResetPeers() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[*pair]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		if tc, ok := c.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.client.Close()
		if c.server != nil {
			_ = c.server.Close()
		}
	}
}

// Close stops the proxy, closes its connections and waits for its
// goroutines.
func (p *Proxy) Close() {
	close(p.closed)
	_ = p.ln.Close()
	p.Heal()
	p.ResetPeers()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// pass waits until traffic flows for c; false when the proxy closed.
func (p *Proxy) pass(c *pair) bool {
	for {
		p.mu.Lock()
		open, hole := p.open, c.hole
		p.mu.Unlock()
		if hole != nil {
			select {
			case <-hole:
			case <-p.closed:
				return false
			}
			continue
		}
		select {
		case <-open:
			return true
		case <-p.closed:
			return false
		}
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	pr := &pair{client: client}
	p.mu.Lock()
	p.conns[pr] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, pr)
		p.mu.Unlock()
	}()
	if !p.pass(pr) {
		_ = client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
	if err != nil {
		p.closeSlowly(client)
		return
	}
	p.mu.Lock()
	pr.server = server
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(pr, server, client, &p.upstreamBytes); done <- struct{}{} }()
	go func() { p.pipe(pr, client, server, nil); done <- struct{}{} }()
	<-done
	<-done
}

// pipe copies src to dst through the gate, then closes dst (slowly,
// when asked).
func (p *Proxy) pipe(pr *pair, dst, src net.Conn, count *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass(pr) {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
			if count != nil {
				count.Add(int64(n))
			}
		}
		if err != nil {
			break
		}
	}
	_ = src.Close()
	p.closeSlowly(dst)
}

func (p *Proxy) closeSlowly(c net.Conn) {
	p.mu.Lock()
	d := p.slowClose
	p.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-p.closed:
		}
	}
	_ = c.Close()
}
