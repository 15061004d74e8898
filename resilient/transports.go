package resilient

import (
	"net/http"
	"os/exec"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A TransportFactory returns a new, unused transport for each connection
// attempt: SDK transports serve a single Connect.
type TransportFactory func() mcp.Transport

// StreamableHTTP returns a factory of streamable HTTP transports to
// endpoint. hc may be nil (http.DefaultClient); its Transport is wrapped,
// not changed.
//
// Prefer it to a factory of your own: its transports let the client see
// whether the server accepted each request, which is how it proves that a
// tools/call refused with 404 did not run (and replays it) while one whose
// connection failed after it was accepted may have run (and is not
// replayed). With another factory, a tools/call that fails with a lost
// session is treated as possibly run.
func StreamableHTTP(endpoint string, hc *http.Client) TransportFactory {
	return func() mcp.Transport {
		obs := newObserver()
		return &httpTransport{
			StreamableClientTransport: &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: observedClient(hc, obs)},
			obs:                       obs,
		}
	}
}

// SSE returns a factory of transports for the 2024-11-05 HTTP+SSE
// protocol, to endpoint. hc may be nil (http.DefaultClient); its Transport
// is wrapped, not changed, to watch each request as StreamableHTTP's do.
// Its sessions have no ID, so nothing is resumed after a reconnect.
func SSE(endpoint string, hc *http.Client) TransportFactory {
	return func() mcp.Transport {
		obs := newObserver()
		return &sseTransport{
			SSEClientTransport: &mcp.SSEClientTransport{Endpoint: endpoint, HTTPClient: observedClient(hc, obs)},
			obs:                obs,
		}
	}
}

// Command returns a factory of stdio transports, each running a new process
// made by newCmd (an *exec.Cmd can be started only once). A reconnect
// restarts the server process. newCmd returning nil fails the connection
// attempt.
func Command(newCmd func() *exec.Cmd) TransportFactory {
	return func() mcp.Transport {
		cmd := newCmd()
		if cmd == nil {
			return nil
		}
		return &mcp.CommandTransport{Command: cmd}
	}
}
