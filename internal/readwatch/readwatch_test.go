package readwatch

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestOnDataIsCalledForEveryReadThatBroughtData(t *testing.T) {
	calls := 0
	r := OnData(iotest.OneByteReader(strings.NewReader("abc")), func() { calls++ })
	data, err := io.ReadAll(r)
	if err != nil || string(data) != "abc" || calls != 3 {
		t.Errorf("read %q, %v, %d calls; want abc, nil, 3 (none for the read that hit EOF)", data, err, calls)
	}
}
