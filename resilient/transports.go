package resilient

import (
	"net/http"
	"os/exec"
	"time"

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
	return StreamableHTTPTransport(mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc})
}

// SSE returns a factory of transports for the 2024-11-05 HTTP+SSE
// protocol, to endpoint. hc may be nil (http.DefaultClient); its Transport
// is wrapped, not changed, to watch each request as StreamableHTTP's do.
// Its sessions have no ID, so nothing is resumed after a reconnect.
func SSE(endpoint string, hc *http.Client) TransportFactory {
	return SSETransport(mcp.SSEClientTransport{Endpoint: endpoint, HTTPClient: hc})
}

// Command returns a factory of stdio transports, each running a new process
// made by newCmd (an *exec.Cmd can be started only once). A reconnect
// restarts the server process. newCmd returning nil fails the connection
// attempt.
func Command(newCmd func() *exec.Cmd) TransportFactory {
	return CommandTransport(newCmd, 0)
}

// StreamableHTTPTransport returns a factory of streamable HTTP transports
// made from template, for servers that need the SDK transport's own
// settings: an OAuthHandler, a custom HTTPClient (bearer tokens, TLS,
// proxies), MaxRetries, DisableStandaloneSSE or MaxEventSize. Each
// connection gets a new transport with template's exported fields; template
// is copied when the factory is made, so changing it later changes nothing.
// The defaults are the SDK's: nil HTTPClient means http.DefaultClient,
// MaxRetries 0 means 5 (negative disables the SDK's own stream reconnects),
// MaxEventSize 0 means [mcp.DefaultMaxEventSize].
//
// Like [StreamableHTTP], whose transports it makes with more settings, it
// wraps (a copy of) the HTTP client's Transport to watch each request, so
// the client can still prove that a refused tools/call did not run. An
// empty or malformed Endpoint fails each connection attempt with the SDK's
// error.
func StreamableHTTPTransport(template mcp.StreamableClientTransport) TransportFactory {
	endpoint, hc := template.Endpoint, template.HTTPClient
	maxRetries, noSSE := template.MaxRetries, template.DisableStandaloneSSE
	oauth, maxEvent := template.OAuthHandler, template.MaxEventSize
	return func() mcp.Transport {
		obs := newObserver()
		return &httpTransport{
			StreamableClientTransport: &mcp.StreamableClientTransport{
				Endpoint:             endpoint,
				HTTPClient:           observedClient(hc, obs),
				MaxRetries:           maxRetries,
				DisableStandaloneSSE: noSSE,
				OAuthHandler:         oauth,
				MaxEventSize:         maxEvent,
			},
			obs: obs,
		}
	}
}

// SSETransport returns a factory of 2024-11-05 HTTP+SSE transports made
// from template (Endpoint, HTTPClient, MaxEventSize), copied when the
// factory is made. nil HTTPClient means http.DefaultClient; MaxEventSize 0
// means [mcp.DefaultMaxEventSize]. Like [SSE], it wraps (a copy of) the
// HTTP client's Transport to watch each request. Sessions have no ID, so
// nothing is resumed after a reconnect. An empty or malformed Endpoint
// fails each connection attempt with the SDK's error.
func SSETransport(template mcp.SSEClientTransport) TransportFactory {
	endpoint, hc, maxEvent := template.Endpoint, template.HTTPClient, template.MaxEventSize
	return func() mcp.Transport {
		obs := newObserver()
		return &sseTransport{
			SSEClientTransport: &mcp.SSEClientTransport{Endpoint: endpoint, HTTPClient: observedClient(hc, obs), MaxEventSize: maxEvent},
			obs:                obs,
		}
	}
}

// CommandTransport is [Command] with the SDK's TerminateDuration: how long
// closing the session waits, after closing the server's stdin, for the
// process to exit before it is sent SIGTERM (and, later, killed). Zero or
// negative means the SDK's default, 5s. Servers that do not exit when stdin
// closes (@modelcontextprotocol/server-everything among them) hold every
// Close for that long, so a short value such as 500ms suits them. newCmd
// returning nil fails the connection attempt.
func CommandTransport(newCmd func() *exec.Cmd, terminate time.Duration) TransportFactory {
	return func() mcp.Transport {
		cmd := newCmd()
		if cmd == nil {
			return nil
		}
		return &mcp.CommandTransport{Command: cmd, TerminateDuration: terminate}
	}
}
