package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testConfig(t *testing.T) Config {
	c := Defaults()
	c.DataDir = t.TempDir()
	c.HTTPAddr = "127.0.0.1:0"
	c.KafkaAddr = "127.0.0.1:0"
	return c
}

func get(t *testing.T, client *http.Client, url string) (int, string, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Proto
}

func TestHealthAndReadiness(t *testing.T) {
	s, err := Start(testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr()
	if code, body, _ := get(t, http.DefaultClient, base+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("healthz %d %q", code, body)
	}
	if code, body, proto := get(t, http.DefaultClient, base+"/readyz"); code != 200 || body != "ready" || proto != "HTTP/1.1" {
		t.Fatalf("readyz %d %q %s", code, body, proto)
	}
	// The same port speaks HTTP/2 without TLS (prior knowledge), as gRPC
	// clients do.
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &protocols, TLSClientConfig: &tls.Config{}}}
	if code, _, proto := get(t, h2, base+"/healthz"); code != 200 || proto != "HTTP/2.0" {
		t.Fatalf("h2c healthz %d %s", code, proto)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestStartFailsCleanly(t *testing.T) {
	c := testConfig(t)
	s, err := Start(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	// Same port taken: a clear error.
	c2 := testConfig(t)
	c2.HTTPAddr = s.Addr()
	if _, err := Start(c2, nil); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("second start on a taken port: %v", err)
	}
	// The data folder is free again after the failed start.
	if s3, err := Start(c2Fixed(c2), nil); err != nil {
		t.Fatalf("start after a failed start on the same folder: %v", err)
	} else {
		s3.Shutdown(context.Background())
	}
	// Same data folder as a running server: refused.
	c3 := testConfig(t)
	c3.DataDir = c.DataDir
	if _, err := Start(c3, nil); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second server on one data folder: %v", err)
	}
	bad := testConfig(t)
	bad.LogFormat = "xml"
	if _, err := Start(bad, nil); err == nil || !strings.Contains(err.Error(), "log_format") {
		t.Fatalf("bad config: %v", err)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ferry.toml")
	os.WriteFile(file, []byte("data_dir = \"from-file\"\nhttp_addr = \"127.0.0.1:1111\"\nlog_level = \"debug\"\nshutdown_timeout = \"5s\"\n"), 0o644)
	env := map[string]string{"FERRY_HTTP_ADDR": "127.0.0.1:2222", "FERRY_LOG_LEVEL": "warn"}
	c, err := Load(file, func(k string) string { return env[k] }, map[string]string{"log_level": "error"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "from-file" || c.HTTPAddr != "127.0.0.1:2222" || c.LogLevel != "error" ||
		c.ShutdownTimeout.Duration != 5*time.Second || c.Fsync != "always" || c.LogFormat != "text" {
		t.Fatalf("precedence: %+v", c)
	}
	os.WriteFile(file, []byte("data_dirr = \"x\"\n"), 0o644)
	if _, err := Load(file, func(string) string { return "" }, nil); err == nil || !strings.Contains(err.Error(), "unknown setting") {
		t.Fatalf("typo in config file: %v", err)
	}
	if _, err := Load("", func(string) string { return "" }, map[string]string{"shutdown_timeout": "soon"}); err == nil {
		t.Fatal("bad duration accepted")
	}
}

// c2Fixed is c with an ephemeral port again.
func c2Fixed(c Config) Config {
	c.HTTPAddr = "127.0.0.1:0"
	c.KafkaAddr = "127.0.0.1:0"
	return c
}

// A data folder moved away under the running server makes it unready, and
// its API answers unavailable rather than writing where nothing is kept.
func TestNotReadyWhenDataFolderGone(t *testing.T) {
	cfg := testConfig(t)
	s, err := Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.Addr()
	if err := os.Rename(cfg.DataDir, cfg.DataDir+".moved"); err != nil {
		t.Fatal(err)
	}
	code, body, _ := get(t, http.DefaultClient, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "data folder") {
		t.Fatalf("readyz %d %q", code, body)
	}
	resp, err := http.Post(base+"/ferry.v1.TopicService/CreateTopic", "application/json", strings.NewReader(`{"name":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(raw), "unavailable") {
		t.Fatalf("create topic: %d %s", resp.StatusCode, raw)
	}
}
