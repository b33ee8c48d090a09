package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	storagelog "github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/record"
)

// writeTestLog writes a closed partition log of 60 batches of two records
// (offsets 0..119) in small segments, and returns its folder and segment
// files, oldest first.
func writeTestLog(t *testing.T) (dir string, segments []string) {
	t.Helper()
	dir = t.TempDir()
	l, err := storagelog.Open(dir, storagelog.Options{
		Fsync:        storagelog.Fsync{Mode: storagelog.FsyncNever},
		SegmentBytes: 4096,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b record.Builder
	for i := range 60 {
		b.Reset()
		for j := range 2 {
			b.Add(record.Record{
				Timestamp: 1_700_000_000_000 + int64(2*i+j),
				Key:       fmt.Appendf(nil, "order-%d", 2*i+j),
				Value:     []byte(strings.Repeat("payload ", 8)),
			})
		}
		if _, err := l.Append(b.Build()); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segments, err = filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(segments) < 3 {
		t.Fatalf("test log has segments %v (%v), want at least 3", segments, err)
	}
	return dir, segments
}

// damageTestLog flips a byte in the records of a middle segment's first
// batch and cuts the active segment short.
func damageTestLog(t *testing.T, segments []string) {
	t.Helper()
	mid := segments[len(segments)/2]
	b, err := os.ReadFile(mid)
	if err != nil {
		t.Fatal(err)
	}
	b[record.HeaderSize+10] ^= 0xff
	if err := os.WriteFile(mid, b, 0o644); err != nil {
		t.Fatal(err)
	}
	last := segments[len(segments)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
}

func TestLogInspectHealthy(t *testing.T) {
	t.Parallel()
	dir, segments := writeTestLog(t)
	for _, args := range [][]string{{}, {"--verify"}, {"--verify", "--batches"}} {
		stdout, stderr, code := runFerry(t, append([]string{"log", "inspect", dir}, args...)...)
		if code != exitOK || stderr != "" {
			t.Errorf("ferry log inspect %q: exit %d, stderr %q", args, code, stderr)
		}
		for _, want := range []string{
			"SEGMENT", "TIMEINDEX", storagelog.SegmentName(0), "ok, active",
			fmt.Sprintf("%d segments, 60 batches, 120 records, ", len(segments)),
			"offsets 0..119", ": OK\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("ferry log inspect %q: output lacks %q:\n%s", args, want, stdout)
			}
		}
		if strings.Contains(stdout, "Findings") {
			t.Errorf("ferry log inspect %q: findings on a healthy log:\n%s", args, stdout)
		}
		if listed := strings.Contains(stdout, "Batches of"); listed != (len(args) == 2) {
			t.Errorf("ferry log inspect %q: batches listed = %v:\n%s", args, listed, stdout)
		}
	}
}

func TestLogInspectDamaged(t *testing.T) {
	t.Parallel()
	dir, segments := writeTestLog(t)
	damageTestLog(t, segments)

	stdout, stderr, code := runFerry(t, "log", "inspect", dir)
	if code != exitOK {
		t.Errorf("without --verify: exit %d, want %d; stderr %q", code, exitOK, stderr)
	}
	for _, want := range []string{"Findings:", "crc-mismatch", "torn-tail", "DAMAGED (2 problems: 1 damage, 1 repairable"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	root := newRootCmd()
	root.SetArgs([]string{"log", "inspect", "--verify", dir})
	root.SetOut(new(strings.Builder))
	errOut := new(strings.Builder)
	root.SetErr(errOut)
	err := root.Execute()
	if ee, ok := err.(*exitError); !ok || ee.code != exitFailure {
		t.Errorf("--verify on a damaged log returned %#v, want an exitError with code %d", err, exitFailure)
	}
	if !strings.Contains(errOut.String(), "damage found: 2 problems") {
		t.Errorf("stderr = %q, want it to say how many problems", errOut.String())
	}
}

func TestLogInspectJSON(t *testing.T) {
	t.Parallel()
	dir, segments := writeTestLog(t)
	damageTestLog(t, segments)
	stdout, _, code := runFerry(t, "log", "inspect", "--json", "--batches", "--verify", dir)
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	var rep storagelog.InspectReport
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Errorf("more than one JSON value:\n%s", stdout)
	}
	if rep.Dir != dir || !rep.Verified || len(rep.Segments) != len(segments) || rep.Problems() != 2 {
		t.Errorf("report: dir %q, verified %v, %d segments, %d problems", rep.Dir, rep.Verified, len(rep.Segments), rep.Problems())
	}
	if n := len(rep.Segments[0].BatchList); n == 0 || n != rep.Segments[0].Batches {
		t.Errorf("first segment lists %d batches, counts %d", n, rep.Segments[0].Batches)
	}
	// Field names are for scripts: keep them stable.
	var raw map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dir", "segments", "findings", "batches", "records", "bytes", "start_offset", "end_offset"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}

func TestLogInspectUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"log", "inspect"}, {"log", "inspect", "a", "b"}, {"log", "inspect", "--bogus", "x"}, {"log", "bogus"}} {
		_, stderr, code := runFerry(t, args...)
		if code != exitUsage {
			t.Errorf("ferry %q: exit %d, want %d; stderr %q", args, code, exitUsage, stderr)
		}
	}
	_, stderr, code := runFerry(t, "log", "inspect", filepath.Join(t.TempDir(), "missing"))
	if code != exitFailure || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing folder: exit %d, stderr %q", code, stderr)
	}
	stdout, _, code := runFerry(t, "log", "inspect", "--help")
	if code != exitOK || !strings.Contains(stdout, "--verify") || !strings.Contains(stdout, "Examples:") {
		t.Errorf("help: exit %d:\n%s", code, stdout)
	}
}
