// Package readwatch tells whoever waits on a stream that data still arrives: both a download
// (executor/ansible's push) and an event stream (client) reset a stall timer on every read that
// brought data.
package readwatch

import "io"

// OnData returns r that calls onData after every read that brought data.
func OnData(r io.Reader, onData func()) io.Reader {
	return &reader{r: r, onData: onData}
}

type reader struct {
	r      io.Reader
	onData func()
}

func (w *reader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.onData()
	}
	return n, err
}
