package client_test

import (
	"io"
	"net/http"
)

// pipeWriter is an http.ResponseWriter whose body goes into a pipe, for a proxy that reads the
// server's answer as it is written.
type pipeWriter struct {
	h http.Header
	w *io.PipeWriter
}

func ioPipe() (*io.PipeReader, *pipeWriter) {
	r, w := io.Pipe()
	return r, &pipeWriter{h: http.Header{}, w: w}
}

func (p *pipeWriter) Header() http.Header         { return p.h }
func (p *pipeWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeWriter) WriteHeader(int)             {}
func (p *pipeWriter) Flush()                      {}
func (p *pipeWriter) close()                      { _ = p.w.Close() }
