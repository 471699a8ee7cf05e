// Package retry says when to try a transient fault again, and how long to wait first: exponential
// backoff with a cap. What counts as transient is the caller's to say; a fault that is not is never
// retried.
package retry

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Policy is how many times to try again and how long to wait before each.
type Policy struct {
	// MaxRetries is how many times a transient fault is tried again (0: never).
	MaxRetries int `yaml:"max_retries"`
	// InitialDelay is the wait before the first retry; each next one is Factor times longer, up to MaxDelay.
	InitialDelay time.Duration `yaml:"initial_delay"`
	MaxDelay     time.Duration `yaml:"max_delay"`
	Factor       float64       `yaml:"factor"`
}

// Forever, as MaxRetries, tries again until the context ends: for work that must be done once a fault
// clears, such as giving back what a failed request holds. Check refuses it: no configuration sets it.
const Forever = math.MaxInt

// Default retries three times, after 1 s, 2 s and 4 s.
var Default = Policy{MaxRetries: 3, InitialDelay: time.Second, MaxDelay: 30 * time.Second, Factor: 2}

// Delay is the wait before retry number n (1 for the first retry).
func (p Policy) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if p.InitialDelay <= 0 {
		return 0
	}
	d := float64(p.InitialDelay) * math.Pow(max(p.Factor, 1), float64(n-1))
	switch {
	case p.MaxDelay > 0 && d > float64(p.MaxDelay):
		return p.MaxDelay
	case d >= math.MaxInt64: // retry number n of Forever, uncapped
		return math.MaxInt64
	}
	return time.Duration(d)
}

// Check says what is wrong with a policy.
func (p Policy) Check() error {
	switch {
	case p.MaxRetries < 0 || p.MaxRetries > 100:
		return fmt.Errorf("max_retries: want 0 to 100, not %d", p.MaxRetries)
	case p.InitialDelay < 0 || p.MaxDelay < 0:
		return fmt.Errorf("delays must not be negative")
	case p.MaxDelay > 0 && p.InitialDelay > p.MaxDelay:
		return fmt.Errorf("initial_delay (%s) is longer than max_delay (%s)", p.InitialDelay, p.MaxDelay)
	case p.Factor < 1 || p.Factor > 10:
		return fmt.Errorf("factor: want 1 to 10, not %g", p.Factor)
	}
	return nil
}

// Wait waits before retry number n, or until ctx ends (its error).
func (p Policy) Wait(ctx context.Context, n int) error {
	return Sleep(ctx, p.Delay(n))
}

// Sleep waits d, or until ctx ends (its error): for a caller that sets a wait itself (a receiver that
// asked for a longer one).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Do runs op until it succeeds, fails for good, or has been retried MaxRetries times; op says whether
// its error is transient. It returns op's last error.
func (p Policy) Do(ctx context.Context, op func() (transient bool, err error)) error {
	for n := 0; ; n++ {
		transient, err := op()
		if err == nil || !transient || n >= p.MaxRetries {
			return err
		}
		if werr := p.Wait(ctx, n+1); werr != nil {
			return err
		}
	}
}

// Retry is Do for a caller whose own first try just failed: it waits before every try (Delay(1) before
// the first) and tries at most MaxRetries times. It returns op's last error, or ctx's when it ended
// before op ran.
func (p Policy) Retry(ctx context.Context, op func() (transient bool, err error)) error {
	for n := 1; n <= p.MaxRetries; n++ {
		if werr := p.Wait(ctx, n); werr != nil {
			return werr
		}
		transient, err := op()
		if err == nil || !transient || n >= p.MaxRetries {
			return err
		}
	}
	return nil
}
