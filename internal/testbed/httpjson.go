package testbed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// DoJSON sends method url through client, with body as JSON (nil: no body), and decodes the JSON answer
// into out (nil: the answer is read and dropped). The error is a transport error, or an answer that is
// not JSON (with its status code).
func DoJSON(client *http.Client, method, url string, body, out any) (int, error) {
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, payload)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out == nil {
		out = new(json.RawMessage)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: answer %d is not JSON: %w", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
