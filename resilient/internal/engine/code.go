package engine

import "github.com/modelcontextprotocol/go-sdk/jsonrpc"

// HasCode reports whether any JSON-RPC error in err's tree has code.
// errors.As finds only the first *jsonrpc.Error, and the SDK's transport
// rejection often comes first.
func HasCode(err error, code int64) bool {
	if err == nil {
		return false
	}
	if we, ok := err.(*jsonrpc.Error); ok && we.Code == code {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return HasCode(u.Unwrap(), code)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if HasCode(e, code) {
				return true
			}
		}
	}
	return false
}
