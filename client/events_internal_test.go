package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
)

// (Moved here from cmd/nodeexec with the code they test.)

func TestReadSSEJoinsDataLinesAndSkipsComments(t *testing.T) {
	stream := ": keep-alive\n\nid: 1\nevent: node\ndata: {\"a\":\ndata: 1}\n\n: keep-alive\n\nid: 2\nevent: end\ndata: {}\n\n"
	var got []string
	err := readSSE(strings.NewReader(stream), func(ev sseEvent) error {
		got = append(got, ev.ID+"|"+ev.Event+"|"+ev.Data)
		return nil
	})
	if want := "1|node|{\"a\":\n1}  2|end|{}"; strings.Join(got, "  ") != want {
		t.Errorf("events = %q, want %q", strings.Join(got, "  "), want)
	}
	if err != io.ErrUnexpectedEOF {
		t.Errorf("a stream that just stops is reported: %v", err)
	}
}

// A stream that breaks before the end is resumed after the last event seen, without repeats: the
// reconnect names it in Last-Event-ID.
func TestFollowResumesABrokenStream(t *testing.T) {
	var mu sync.Mutex
	var resumes []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last := r.Header.Get("Last-Event-ID")
		mu.Lock()
		resumes = append(resumes, last)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		if last == "" {
			for i := 1; i <= 2; i++ {
				fmt.Fprintf(w, "id: %d\nevent: node\ndata: {\"seq\":%d,\"type\":\"node\",\"node\":\"h%d\",\"state\":\"deploying\"}\n\n", i, i, i)
			}
			return // the connection drops here
		}
		// A server that replays what the client saw already: handed on once only.
		fmt.Fprint(w, "id: 2\nevent: node\ndata: {\"seq\":2,\"type\":\"node\",\"node\":\"h2\",\"state\":\"deploying\"}\n\n")
		fmt.Fprint(w, "id: 3\nevent: deployment\ndata: {\"seq\":3,\"type\":\"deployment\",\"state\":\"success\"}\n\n")
		fmt.Fprint(w, "event: end\ndata: {\"id\":\"d-1\",\"state\":\"success\"}\n\n")
	}))
	defer hs.Close()
	c, err := New(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := c.Follow(ctx, "d-1", func(ev api.Event) { seqs = append(seqs, ev.Seq) })
	if err != nil || d.State != api.StateSuccess {
		t.Fatalf("Follow = %+v, %v", d, err)
	}
	if fmt.Sprint(seqs) != "[1 2 3]" || strings.Join(resumes, ",") != ",2" {
		t.Errorf("events %v, requests with Last-Event-ID %q", seqs, resumes)
	}
}
