package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/web"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestServesPages(t *testing.T) {
	h := web.Handler()
	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html", "<noscript>"},
		{"/app.js", "text/javascript", "ferry.v1."},
		{"/style.css", "text/css", "body"},
	} {
		resp, body := get(t, h, "GET", c.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", c.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, c.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", c.path, got, c.ctype)
		}
		if !strings.Contains(body, c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: may be framed", c.path)
		}
	}
}

// The pages load nothing from elsewhere and run no inline script, so the
// Content-Security-Policy holds and the dashboard works offline.
func TestNoInlineOrRemoteScript(t *testing.T) {
	_, body := get(t, web.Handler(), "GET", "/")
	for _, bad := range []string{"<script>", "http://", "https://", "style=", "onclick="} {
		if strings.Contains(body, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	h := web.Handler()
	if resp, _ := get(t, h, "GET", "/nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js: status %d, want 404", resp.StatusCode)
	}
	// A POST that reaches the dashboard is a mistyped API path: not found,
	// which Connect clients report as unimplemented.
	for _, path := range []string{"/", "/ferry.v1.TopicServic/ListTopics"} {
		if resp, _ := get(t, h, "POST", path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: status %d, want 404", path, resp.StatusCode)
		}
	}
}
