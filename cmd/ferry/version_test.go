package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runFerry(t, "version")
	if code != exitOK {
		t.Fatalf("ferry version: exit code %d; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"ferry " + version + "\n",
		"commit:  ",
		"go:      " + runtime.Version() + "\n",
		"os/arch: " + runtime.GOOS + "/" + runtime.GOARCH + "\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("ferry version printed\n%s\nwant it to contain %q", stdout, want)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runFerry(t, "version", "--json")
	if code != exitOK {
		t.Fatalf("ferry version --json: exit code %d; stderr:\n%s", code, stderr)
	}
	// Strict decoding: the JSON is an interface for scripts, so an unexpected
	// field, a missing one or trailing output is a change to notice.
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var got map[string]string
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("ferry version --json printed %q: %v", stdout, err)
	}
	if dec.More() {
		t.Errorf("ferry version --json printed more than one JSON value: %q", stdout)
	}
	want := map[string]string{
		"version": version,
		"go":      runtime.Version(),
		"os":      runtime.GOOS,
		"arch":    runtime.GOARCH,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if got["commit"] == "" {
		t.Errorf("commit is empty, want a revision or %q", "unknown")
	}
	if len(got) != 5 {
		t.Errorf("got fields %v, want exactly version, commit, go, os, arch", got)
	}
}

func TestVersionJSONMatchesText(t *testing.T) {
	t.Parallel()
	text, _, _ := runFerry(t, "version")
	js, _, _ := runFerry(t, "version", "--json")
	var info versionInfo
	if err := json.NewDecoder(bytes.NewBufferString(js)).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "commit:  "+info.Commit+"\n") {
		t.Errorf("text output\n%s\ndisagrees with JSON commit %q", text, info.Commit)
	}
}

func TestNewVersionInfo(t *testing.T) {
	t.Parallel()
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name        string
		version     string
		bi          *debug.BuildInfo
		wantVersion string
		wantCommit  string
	}{
		{"no build info", "dev", nil, "dev", "unknown"},
		{"no vcs", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", "unknown"},
		{
			"clean tree", "dev",
			&debug.BuildInfo{Settings: settings("vcs.revision", "abc123", "vcs.modified", "false")},
			"dev", "abc123",
		},
		{
			"dirty tree", "dev",
			&debug.BuildInfo{Settings: settings("vcs.modified", "true", "vcs.revision", "abc123")},
			"dev", "abc123-dirty",
		},
		{"go install @version", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}}, "v0.3.0", "unknown"},
		{"ldflags win over module version", "v1.0.0", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}}, "v1.0.0", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newVersionInfo(tt.version, tt.bi)
			if got.Version != tt.wantVersion || got.Commit != tt.wantCommit {
				t.Errorf("version %q, commit %q; want %q, %q", got.Version, got.Commit, tt.wantVersion, tt.wantCommit)
			}
			if got.Go != runtime.Version() || got.OS != runtime.GOOS || got.Arch != runtime.GOARCH {
				t.Errorf("platform = %s %s/%s, want the running one", got.Go, got.OS, got.Arch)
			}
		})
	}
}
