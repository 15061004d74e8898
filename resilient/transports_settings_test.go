package resilient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// headerRT sets one header on every request, as a bearer-token client does.
type headerRT struct {
	name, value string
	next        http.RoundTripper
}

func (rt headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(rt.name, rt.value)
	return rt.next.RoundTrip(r)
}

// nopOAuth is an auth.OAuthHandler that never authorizes: only its identity
// matters here.
type nopOAuth struct{ auth.OAuthHandler }

func TestStreamableHTTPTransportCopiesSettings(t *testing.T) {
	userRT := headerRT{name: "Authorization", value: "Bearer t", next: http.DefaultTransport}
	hc := &http.Client{Transport: userRT, Timeout: 7 * time.Second}
	oauth := &nopOAuth{}
	template := mcp.StreamableClientTransport{
		Endpoint:             "http://127.0.0.1:1/mcp",
		HTTPClient:           hc,
		MaxRetries:           -1,
		DisableStandaloneSSE: true,
		OAuthHandler:         oauth,
		MaxEventSize:         1234,
	}
	factory := StreamableHTTPTransport(template)
	template.Endpoint = "http://changed.invalid/"
	template.MaxRetries = 9

	first, second := factory(), factory()
	for i, tr := range []mcp.Transport{first, second} {
		ht, ok := tr.(*httpTransport)
		if !ok {
			t.Fatalf("transport %d is %T, want *httpTransport (observed requests)", i, tr)
		}
		got := ht.StreamableClientTransport
		if got.Endpoint != "http://127.0.0.1:1/mcp" || got.MaxRetries != -1 || !got.DisableStandaloneSSE || got.MaxEventSize != 1234 {
			t.Errorf("transport %d = {Endpoint %q, MaxRetries %d, DisableStandaloneSSE %v, MaxEventSize %d}, want the template as it was when the factory was made",
				i, got.Endpoint, got.MaxRetries, got.DisableStandaloneSSE, got.MaxEventSize)
		}
		if got.OAuthHandler != oauth {
			t.Errorf("transport %d OAuthHandler = %v, want the template's", i, got.OAuthHandler)
		}
		if got.HTTPClient == hc {
			t.Errorf("transport %d uses the caller's *http.Client itself, want a copy (the caller's is not changed)", i)
		}
		ort, ok := got.HTTPClient.Transport.(*observingRoundTripper)
		if !ok {
			t.Fatalf("transport %d HTTPClient.Transport is %T, want *observingRoundTripper", i, got.HTTPClient.Transport)
		}
		if ort.next != userRT || ort.obs != ht.obs {
			t.Errorf("transport %d observer wraps %T (its own observer: %v), want the caller's RoundTripper and the transport's observer", i, ort.next, ort.obs == ht.obs)
		}
		if got.HTTPClient.Timeout != 7*time.Second {
			t.Errorf("transport %d HTTPClient.Timeout = %v, want the caller's 7s", i, got.HTTPClient.Timeout)
		}
	}
	if first == second || first.(*httpTransport).obs == second.(*httpTransport).obs {
		t.Error("two connections share a transport or an observer, want new ones for each")
	}
	if hc.Transport != userRT {
		t.Errorf("caller's HTTPClient.Transport changed to %T", hc.Transport)
	}
}

func TestStreamableHTTPTransportDefaults(t *testing.T) {
	ht := StreamableHTTPTransport(mcp.StreamableClientTransport{Endpoint: "http://127.0.0.1:1/mcp"})().(*httpTransport)
	ort, ok := ht.HTTPClient.Transport.(*observingRoundTripper)
	if !ok || ort.next != http.DefaultTransport {
		t.Errorf("nil HTTPClient: transport %T, want an observer over http.DefaultTransport", ht.HTTPClient.Transport)
	}
	if ht.MaxRetries != 0 || ht.DisableStandaloneSSE || ht.OAuthHandler != nil || ht.MaxEventSize != 0 {
		t.Errorf("zero template gave non-zero settings: %+v", *ht.StreamableClientTransport)
	}
}

// TestStreamableHTTPTransportBearer connects through a client that adds a
// bearer token to a server that refuses requests without it.
func TestStreamableHTTPTransportBearer(t *testing.T) {
	server := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, struct{}{}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	var sawWithout atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			sawWithout.Add(1)
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	factory := StreamableHTTPTransport(mcp.StreamableClientTransport{
		Endpoint:             ts.URL,
		HTTPClient:           &http.Client{Transport: headerRT{name: "Authorization", value: "Bearer s3cret", next: base}},
		DisableStandaloneSSE: true,
	})
	c, err := Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil), factory, nil)
	if err != nil {
		t.Fatalf("Connect with a bearer token: %v", err)
	}
	defer c.Close()
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError {
		t.Fatalf("CallTool = %v, %v; want a result", res, err)
	}
	if n := sawWithout.Load(); n != 0 {
		t.Errorf("server saw %d requests without the token, want 0", n)
	}
}

func TestSSETransportCopiesSettings(t *testing.T) {
	userRT := headerRT{name: "X", value: "y", next: http.DefaultTransport}
	hc := &http.Client{Transport: userRT}
	template := mcp.SSEClientTransport{Endpoint: "http://127.0.0.1:1/sse", HTTPClient: hc, MaxEventSize: 99}
	factory := SSETransport(template)
	template.Endpoint = "http://changed.invalid/"
	a, b := factory(), factory()
	if a == b {
		t.Error("two connections share a transport, want a new one each")
	}
	got, ok := a.(*sseTransport)
	if !ok {
		t.Fatalf("transport is %T, want *sseTransport (observed requests)", a)
	}
	if got.Endpoint != "http://127.0.0.1:1/sse" || got.MaxEventSize != 99 {
		t.Errorf("transport = {Endpoint %q, MaxEventSize %d}, want the template as it was when the factory was made", got.Endpoint, got.MaxEventSize)
	}
	ort, ok := got.HTTPClient.Transport.(*observingRoundTripper)
	if !ok || ort.next != userRT || ort.obs != got.obs {
		t.Errorf("HTTPClient.Transport is %T, want an observer (the transport's own) over the caller's RoundTripper", got.HTTPClient.Transport)
	}
	if hc.Transport != userRT {
		t.Errorf("caller's HTTPClient.Transport changed to %T", hc.Transport)
	}
}

func TestCommandTransportTerminateDuration(t *testing.T) {
	for _, d := range []time.Duration{0, 300 * time.Millisecond} {
		tr := CommandTransport(func() *exec.Cmd { return exec.Command("true") }, d)()
		ct, ok := tr.(*mcp.CommandTransport)
		if !ok {
			t.Fatalf("transport is %T, want *mcp.CommandTransport", tr)
		}
		if ct.TerminateDuration != d || ct.Command == nil {
			t.Errorf("TerminateDuration = %v (Command %v), want %v and a command", ct.TerminateDuration, ct.Command, d)
		}
	}
	if tr := CommandTransport(func() *exec.Cmd { return nil }, time.Second)(); tr != nil {
		t.Errorf("newCmd returning nil gave transport %v, want nil (the attempt fails)", tr)
	}
}
