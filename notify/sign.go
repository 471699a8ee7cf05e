package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery. The signature covers the timestamp and the body, so a captured request
// cannot be replayed later with a fresh timestamp.
const (
	HeaderSignature = "X-Nodeexec-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
	HeaderTimestamp = "X-Nodeexec-Timestamp" // Unix seconds when this attempt was sent
	HeaderEvent     = "X-Nodeexec-Event"     // the event's type
	HeaderDelivery  = "X-Nodeexec-Delivery"  // the event's id, the same on every retry
)

// MinSecretLen is the shortest secret accepted; `openssl rand -hex 32` makes a good one.
const MinSecretLen = 16

// Secret is a webhook's signing key. It prints as ****, so it cannot reach a log by accident.
type Secret []byte

func (Secret) String() string   { return "****" }
func (Secret) GoString() string { return "****" }

// ReadSecret reads a webhook's secret from its file: the content, without surrounding white space.
func ReadSecret(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the webhook secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < MinSecretLen {
		return nil, fmt.Errorf("the webhook secret in %s is shorter than %d characters: write a long random one (openssl rand -hex 32)", path, MinSecretLen)
	}
	return Secret(b), nil
}

// Sign is the signature header's value for a body sent at timestamp (Unix seconds, as sent).
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature: the signature does not match the body and timestamp under this secret.
var ErrBadSignature = errors.New("webhook signature does not match")

// Verify is what a receiver does with a delivery: the signature must match the exact body and the
// timestamp header under the shared secret, and the timestamp must be within tolerance of now (a
// replay of an old request fails). Receivers written in Go can call it; others do the same steps.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook timestamp %q is not Unix seconds", timestamp)
	}
	if age := now.Sub(time.Unix(sec, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("webhook timestamp is %s away from now, more than %s: a replay, or a clock to fix", age.Round(time.Second), tolerance)
	}
	if !strings.HasPrefix(signature, "sha256=") || !hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body))) {
		return ErrBadSignature
	}
	return nil
}
