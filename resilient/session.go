//lint:file-ignore SA1019 Client mirrors every method of *mcp.ClientSession, including the logging API that SEP-2577 deprecates, so that it stays a drop-in.

package resilient

import (
	"context"
	"iter"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Session is the method set shared by [*mcp.ClientSession] and [*Client].
// Code written against it takes either: the raw SDK session in tests or
// where failover does not matter, the resilient client in production.
type Session interface {
	CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error)
	ListTools(ctx context.Context, params *mcp.ListToolsParams) (*mcp.ListToolsResult, error)
	Tools(ctx context.Context, params *mcp.ListToolsParams) iter.Seq2[*mcp.Tool, error]
	ListResources(ctx context.Context, params *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error)
	Resources(ctx context.Context, params *mcp.ListResourcesParams) iter.Seq2[*mcp.Resource, error]
	ReadResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error)
	ListResourceTemplates(ctx context.Context, params *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error)
	ResourceTemplates(ctx context.Context, params *mcp.ListResourceTemplatesParams) iter.Seq2[*mcp.ResourceTemplate, error]
	ListPrompts(ctx context.Context, params *mcp.ListPromptsParams) (*mcp.ListPromptsResult, error)
	Prompts(ctx context.Context, params *mcp.ListPromptsParams) iter.Seq2[*mcp.Prompt, error]
	GetPrompt(ctx context.Context, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error)
	Complete(ctx context.Context, params *mcp.CompleteParams) (*mcp.CompleteResult, error)
	Ping(ctx context.Context, params *mcp.PingParams) error
	SetLoggingLevel(ctx context.Context, params *mcp.SetLoggingLevelParams) error
	Subscribe(ctx context.Context, params *mcp.SubscribeParams) error
	Unsubscribe(ctx context.Context, params *mcp.UnsubscribeParams) error
	NotifyProgress(ctx context.Context, params *mcp.ProgressNotificationParams) error
	InitializeResult() *mcp.InitializeResult
	ID() string
	Close() error
	Wait() error
}

var (
	_ Session = (*mcp.ClientSession)(nil)
	_ Session = (*Client)(nil)
)
