package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelaysGrowByTheFactorUpToTheCap(t *testing.T) {
	p := Policy{MaxRetries: 6, InitialDelay: time.Second, MaxDelay: 10 * time.Second, Factor: 2}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := p.Delay(i + 1); got != w {
			t.Errorf("delay %d = %s, want %s", i+1, got, w)
		}
	}
	if got := (Policy{InitialDelay: time.Second, Factor: 1}).Delay(5); got != time.Second {
		t.Errorf("factor 1 = %s", got)
	}
}

func TestDoRetriesOnlyTransientFaultsAndStops(t *testing.T) {
	p := Policy{MaxRetries: 3, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond, Factor: 2}
	boom := errors.New("boom")
	cases := []struct {
		name  string
		fails int  // attempts that fail before one succeeds
		trans bool // whether the failures are transient
		calls int
		err   error
	}{
		{"succeeds at once", 0, true, 1, nil},
		{"transient then success", 2, true, 3, nil},
		{"transient past the limit", 10, true, 4, boom},
		{"permanent is not retried", 10, false, 1, boom},
	}
	for _, c := range cases {
		calls := 0
		err := p.Do(context.Background(), func() (bool, error) {
			calls++
			if calls <= c.fails {
				return c.trans, boom
			}
			return false, nil
		})
		if calls != c.calls || !errors.Is(err, c.err) && err != c.err {
			t.Errorf("%s: %d calls, err %v; want %d, %v", c.name, calls, err, c.calls, c.err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	slow := Policy{MaxRetries: 5, InitialDelay: time.Hour, Factor: 2}
	if err := slow.Do(ctx, func() (bool, error) { calls++; return true, boom }); err != boom || calls != 1 {
		t.Errorf("cancelled: %d calls, %v", calls, err)
	}
}

// Retry goes on from a try the caller made: it waits first, and never tries more than MaxRetries times.
func TestRetryWaitsBeforeEachTryAndStops(t *testing.T) {
	p := Policy{MaxRetries: 3, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond, Factor: 2}
	boom := errors.New("boom")
	cases := []struct {
		name  string
		fails int  // tries that fail before one succeeds
		trans bool // whether the failures are transient
		calls int
		err   error
	}{
		{"succeeds at its first try", 0, true, 1, nil},
		{"transient then success", 2, true, 3, nil},
		{"transient past the limit", 10, true, 3, boom},
		{"permanent is not retried", 10, false, 1, boom},
	}
	for _, c := range cases {
		calls := 0
		err := p.Retry(context.Background(), func() (bool, error) {
			calls++
			if calls <= c.fails {
				return c.trans, boom
			}
			return false, nil
		})
		if calls != c.calls || err != c.err {
			t.Errorf("%s: %d calls, err %v; want %d, %v", c.name, calls, err, c.calls, c.err)
		}
	}
	if err := (Policy{}).Retry(context.Background(), func() (bool, error) { t.Error("tried with no retries"); return false, nil }); err != nil {
		t.Errorf("no retries: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := Policy{MaxRetries: 5, InitialDelay: time.Hour, Factor: 2}
	if err := slow.Retry(ctx, func() (bool, error) { t.Error("tried after the context ended"); return true, boom }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before the first try: %v", err)
	}
}

func TestForeverRetriesPastAnyCountUntilTheContextEnds(t *testing.T) {
	p := Policy{MaxRetries: Forever, InitialDelay: time.Microsecond, MaxDelay: time.Microsecond, Factor: 2}
	boom := errors.New("boom")
	calls := 0
	if err := p.Do(context.Background(), func() (bool, error) {
		if calls++; calls <= 150 {
			return true, boom
		}
		return true, nil
	}); err != nil || calls != 151 {
		t.Errorf("%d calls, %v; want 151, nil", calls, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	if err := p.Do(ctx, func() (bool, error) {
		if calls++; calls == 3 {
			cancel()
		}
		return true, boom
	}); err != boom || calls != 3 {
		t.Errorf("cancelled after 3: %d calls, %v", calls, err)
	}
	if d := p.Delay(Forever); d != time.Microsecond {
		t.Errorf("capped delay of retry %d = %s", Forever, d)
	}
	if d := (Policy{InitialDelay: time.Second, Factor: 2}).Delay(5000); d <= 0 {
		t.Errorf("uncapped delay of retry 5000 = %s, want the longest duration", d)
	}
	if d := (Policy{Factor: 2}).Delay(5000); d != 0 {
		t.Errorf("no initial delay: %s", d)
	}
}

func TestCheck(t *testing.T) {
	if err := Default.Check(); err != nil {
		t.Errorf("default: %v", err)
	}
	for _, p := range []Policy{{MaxRetries: -1, Factor: 2}, {MaxRetries: Forever, Factor: 2}, {MaxRetries: 1, InitialDelay: time.Minute, MaxDelay: time.Second, Factor: 2}, {Factor: 0.5}} {
		if p.Check() == nil {
			t.Errorf("%+v passed", p)
		}
	}
}
