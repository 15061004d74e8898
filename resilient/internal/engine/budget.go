package engine

import (
	"fmt"
	"sync"
)

// Defaults of [NewBudget]: the retry budget of resilient.Options.Budget.
const (
	DefaultBudgetTokens = 100
	DefaultBudgetRatio  = 0.1
)

// Budget is a token bucket shared by every call of a client, after gRPC's
// retry throttling: each failure that signals an unhealthy server costs one
// token, each success earns ratio tokens back, and retries are allowed only
// while more than half the tokens remain. A dead cluster therefore cannot
// turn many callers into as many retry storms.
//
// A nil *Budget allows every retry. Budget is safe for concurrent use.
type Budget struct {
	mu     sync.Mutex
	tokens float64
	max    float64
	ratio  float64
}

// NewBudget returns a full budget of maxTokens tokens earning ratio tokens
// per success. Zero arguments take DefaultBudgetTokens (100) and
// DefaultBudgetRatio (0.1); negative ones are an error.
func NewBudget(maxTokens, ratio float64) (*Budget, error) {
	if maxTokens < 0 || !(ratio >= 0) {
		return nil, fmt.Errorf("engine: NewBudget(%v, %v): tokens and ratio must be >= 0", maxTokens, ratio)
	}
	if maxTokens == 0 {
		maxTokens = DefaultBudgetTokens
	}
	if ratio == 0 {
		ratio = DefaultBudgetRatio
	}
	return &Budget{tokens: maxTokens, max: maxTokens, ratio: ratio}, nil
}

// Allow reports whether a retry may be spent now.
func (b *Budget) Allow() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokens > b.max/2
}

// Failure records a failure that counts against the budget.
func (b *Budget) Failure() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.tokens = max(b.tokens-1, 0)
	b.mu.Unlock()
}

// Success records a success, earning tokens back up to the maximum.
func (b *Budget) Success() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.tokens = min(b.tokens+b.ratio, b.max)
	b.mu.Unlock()
}

// Tokens returns the tokens left.
func (b *Budget) Tokens() float64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokens
}
