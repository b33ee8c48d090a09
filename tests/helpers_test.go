// Package tests holds Ferry's black-box end-to-end tests: the real server on
// 127.0.0.1 with an ephemeral port, driven through its network API only.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ferrymq/ferry/server"
)

// startServer runs a Ferry server on a fresh data folder and returns its
// base URL; it is shut down when the test ends.
func startServer(t *testing.T, edit ...func(*server.Config)) (*server.Server, string) {
	t.Helper()
	cfg := server.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	for _, e := range edit {
		e(&cfg)
	}
	s, err := server.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, "http://" + s.Addr()
}

// call posts a JSON request to a unary procedure, as curl would:
//
//	curl -H 'Content-Type: application/json' -d '{...}' URL/ferry.v1.TopicService/CreateTopic
//
// It returns the HTTP status and the decoded JSON body.
func call(t *testing.T, base, procedure string, req any) (int, map[string]any) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, "POST", base+"/"+procedure, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("%s: %v", procedure, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: answer %d is not JSON: %q", procedure, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// mustCall is call that fails the test unless the answer is 200.
func mustCall(t *testing.T, base, procedure string, req any) map[string]any {
	t.Helper()
	status, out := call(t, base, procedure, req)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d: %v", procedure, status, out)
	}
	return out
}

// jsonStream is a Connect server stream read over HTTP/1.1 with the JSON
// codec, as curl would: each frame is one byte of flags, four bytes of
// length, and the JSON message; the last frame (flag 2) ends the stream.
type jsonStream struct {
	resp *http.Response
	r    *bufio.Reader
}

func openStream(t *testing.T, ctx context.Context, base, procedure string, req any) *jsonStream {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var frame bytes.Buffer
	frame.WriteByte(0)
	binary.Write(&frame, binary.BigEndian, uint32(len(body)))
	frame.Write(body)
	hr, err := http.NewRequestWithContext(ctx, "POST", base+"/"+procedure, &frame)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/connect+json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("%s: %v", procedure, err)
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("%s: status %d: %s", procedure, resp.StatusCode, raw)
	}
	st := &jsonStream{resp: resp, r: bufio.NewReader(resp.Body)}
	t.Cleanup(func() { resp.Body.Close() })
	return st
}

// next returns the stream's next message, or the end-of-stream frame's
// error as a Go error.
func (s *jsonStream) next() (map[string]any, error) {
	var head [5]byte
	if _, err := io.ReadFull(s.r, head[:]); err != nil {
		return nil, err
	}
	payload := make([]byte, binary.BigEndian.Uint32(head[1:]))
	if _, err := io.ReadFull(s.r, payload); err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("frame %q: %w", payload, err)
	}
	if head[0]&2 != 0 {
		if e, ok := m["error"]; ok {
			return nil, fmt.Errorf("stream ended: %v", e)
		}
		return nil, io.EOF
	}
	return m, nil
}

// b64 is s as protobuf JSON writes bytes.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// unb64 decodes a bytes field of a JSON answer.
func unb64(t *testing.T, v any) string {
	t.Helper()
	s, _ := v.(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%q is not base64: %v", s, err)
	}
	return string(b)
}
