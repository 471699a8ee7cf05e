package engine

import (
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/retry"
)

// What a failed request leaves behind is given back as soon as the database answers, without hammering
// it: 200 ms, doubling up to 30 s, for as long as the engine runs.
func TestLeftoversAreRetriedAfter200msDoublingTo30s(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond, 25600 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := storeBackoff.Delay(i + 1); got != w {
			t.Errorf("wait before retry %d = %s, want %s", i+1, got, w)
		}
	}
	if storeBackoff.MaxRetries != retry.Forever {
		t.Errorf("retries = %d, want until the server stops", storeBackoff.MaxRetries)
	}
}
