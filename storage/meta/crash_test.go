package meta

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/crashtest"
	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/record"
)

// The crash test re-runs this test binary as a child that applies numbered
// batches and prints each confirmed number; the parent kills it with SIGKILL
// at a random moment and checks the reopened store.
const (
	crashDirEnv   = "FERRY_META_CRASH_DIR"
	crashStartEnv = "FERRY_META_CRASH_START"
	crashKeys     = 5
)

// crashOptions make automatic checkpoints and change-log deletions happen
// often, so kills land in the middle of them too.
var crashOptions = Options{SegmentBytes: 8 << 10, CheckpointBytes: 32 << 10}

// TestCrashChild is the child process of TestKill9; it does nothing unless
// started by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestKill9")
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(2)
	}
	start, err := strconv.Atoi(os.Getenv(crashStartEnv))
	if err != nil {
		fail("bad %s: %v", crashStartEnv, err)
	}
	s, err := Open(dir, crashOptions)
	if err != nil {
		fail("open: %v", err)
	}
	// Never outlive a parent that died without killing us.
	deadline := time.Now().Add(30 * time.Second)
	for i := start; time.Now().Before(deadline); i++ {
		var b Batch
		v := []byte(strconv.Itoa(i))
		for k := range crashKeys {
			b.Put(key("k/%d", k), v)
		}
		b.DeletePrefix("t/")
		b.Put("t/a", v)
		b.Put("t/b", v)
		b.Put(key("n/%09d", i), v)
		if err := s.Apply(&b, Written); err != nil {
			fail("apply %d: %v", i, err)
		}
		if i%97 == 0 {
			if err := s.Checkpoint(); err != nil {
				fail("checkpoint: %v", err)
			}
		}
		// os.Stdout is unbuffered: the line is in the pipe once Fprintf returns.
		fmt.Fprintf(os.Stdout, "ok %d\n", i)
	}
	s.Close()
	os.Exit(0)
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	next := 1
	deadline := time.Now().Add(15 * time.Second)
	kills, cuts := 0, 0
	for iter := 0; iter < 15 && time.Now().Before(deadline); iter++ {
		confirmed := crashOnce(t, dir, next, time.Duration(5+rng.IntN(200))*time.Millisecond)
		kills++
		last, cut := checkAfterCrash(t, dir, confirmed)
		if cut {
			cuts++
		}
		next = last + 1
	}
	t.Logf("%d kills, %d torn tails cut, %d batches applied", kills, cuts, next-1)
	if kills < 3 {
		t.Fatalf("only %d kills in the time allowed", kills)
	}
}

// crashOnce runs a child from batch number start, kills it with SIGKILL
// after it confirmed its first batch and ran for about runFor, and returns
// the last batch number it confirmed.
func crashOnce(t *testing.T, dir string, start int, runFor time.Duration) int {
	t.Helper()
	child := crashtest.Child{Run: "^TestCrashChild$", Env: []string{crashDirEnv + "=" + dir, crashStartEnv + "=" + strconv.Itoa(start)}}
	last := start - 1
	confirmed := func(line string) bool { return strings.HasPrefix(line, "ok ") }
	for _, line := range child.RunAndKill(t, confirmed, runFor) {
		if n, ok := strings.CutPrefix(line, "ok "); ok {
			if i, err := strconv.Atoi(n); err == nil {
				last = i
			}
		}
	}
	return last
}

// checkAfterCrash reopens the store and checks that every confirmed batch
// is there and no batch is there in part. It returns the last batch found
// and whether recovery cut a torn tail.
func checkAfterCrash(t *testing.T, dir string, confirmed int) (int, bool) {
	t.Helper()
	s, err := Open(dir, crashOptions)
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	v0, ok := s.Get("k/0")
	if !ok {
		t.Fatalf("after kill -9 nothing is stored, %d confirmed", confirmed)
	}
	last, err := strconv.Atoi(string(v0))
	if err != nil {
		t.Fatalf("k/0 = %q", v0)
	}
	if last < confirmed {
		t.Fatalf("batch %d was confirmed but the store holds only up to %d", confirmed, last)
	}
	for k := 1; k < crashKeys; k++ {
		if v, _ := s.Get(key("k/%d", k)); string(v) != string(v0) {
			t.Fatalf("half a batch: k/0 = %s but k/%d = %s", v0, k, v)
		}
	}
	checkSameState(t, scanPrefix(s, "t/"), []kv{{"t/a", string(v0)}, {"t/b", string(v0)}})
	n := 0
	s.Scan("n/", func(k string, v []byte) bool {
		n++
		if k != key("n/%09d", n) || string(v) != strconv.Itoa(n) {
			t.Fatalf("numbered key %d is %q=%q", n, k, v)
		}
		return true
	})
	if n != last {
		t.Fatalf("%d numbered keys, want %d", n, last)
	}
	return last, s.Recovery().ChangeLog.CutSegment >= 0
}

func scanPrefix(s *Store, prefix string) []kv {
	var out []kv
	s.Scan(prefix, func(k string, v []byte) bool {
		out = append(out, kv{k, string(v)})
		return true
	})
	return out
}

// A batch torn by a power cut in the middle of its write is dropped whole,
// and so is garbage after the last whole batch.
func TestTornTailDropsWholeBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(path string, size int64) error
		batches int // replayed after the damage
	}{
		{"cut in the records", func(p string, n int64) error { return os.Truncate(p, n-1) }, 1},
		{"cut in the header", func(p string, n int64) error { return os.Truncate(p, n-(20+record.HeaderSize)) }, 1},
		{"garbage after", func(p string, _ int64) error { return appendBytes(p, bytes.Repeat([]byte{0xAB}, 70)) }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{})
			mustApply(t, s, Written, func(b *Batch) {
				b.Put("pos/a", []byte("1"))
				b.Put("pos/b", []byte("1"))
			})
			mustApply(t, s, Written, func(b *Batch) {
				b.Put("pos/a", []byte("2"))
				b.Put("pos/b", []byte("2"))
				b.DeletePrefix("pos/")
				b.Put("pos/c", []byte("2"))
			})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			seg := filepath.Join(dir, changesDir, log.SegmentName(0)+".log")
			fi, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(seg, fi.Size()); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir, Options{})
			want := []kv{{"pos/a", "1"}, {"pos/b", "1"}}
			if tc.batches == 2 {
				want = []kv{{"pos/c", "2"}}
			}
			checkSameState(t, dump(s), want)
			if rec := s.Recovery(); rec.ChangeLog.CutSegment != 0 || rec.ReplayedBatches != tc.batches {
				t.Fatalf("recovery %+v: want a cut tail and %d batches replayed", rec, tc.batches)
			}
			// The store goes on from the cut.
			mustApply(t, s, Synced, func(b *Batch) { b.Put("pos/d", []byte("3")) })
			s.Close()
			checkSameState(t, dump(openStore(t, dir, Options{})), append(want, kv{"pos/d", "3"}))
		})
	}
}

func appendBytes(path string, p []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(p)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
