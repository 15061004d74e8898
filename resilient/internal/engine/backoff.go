package engine

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/mcpkit/resilience/retry"
)

// Stop is what a BackOff returns once its policy's MaxElapsed has passed.
const Stop = backoff.Stop

// BackOff yields the waits between attempts. It keeps state and is not
// safe for concurrent use: make one per retry loop.
type BackOff interface {
	NextBackOff() time.Duration
}

// NewBackOff returns a fresh exponential backoff with full jitter for p,
// bounded by p.MaxElapsed (it returns [Stop] once that much time has
// passed since the call to NewBackOff). Zero fields take their defaults.
func NewBackOff(p retry.Policy) BackOff {
	p = p.WithDefaults()
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.InitialBackoff),
		backoff.WithMaxInterval(p.MaxBackoff),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(max(p.MaxElapsed, 0)),
	)
	return &fullJitter{exp: exp}
}

// fullJitter draws each wait uniformly from [0, d), where d is the
// exponential ceiling: the "full jitter" of the AWS architecture blog, which
// spreads a herd of clients better than backoff's ±factor jitter.
type fullJitter struct {
	exp *backoff.ExponentialBackOff
}

func (f *fullJitter) NextBackOff() time.Duration {
	d := f.exp.NextBackOff()
	if d == backoff.Stop || d <= 0 {
		return d
	}
	return rand.N(d)
}
