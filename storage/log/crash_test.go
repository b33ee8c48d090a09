package log

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/crashtest"
	"github.com/ferrymq/ferry/storage/record"
)

const crashChildEnv = "FERRY_LOG_CRASH_CHILD_DIR"

// crashValue is the value of record i of the batch (writer, seq): it says
// which batch it belongs to, so the parent can check content.
func crashValue(writer, seq, i int) []byte {
	v := make([]byte, 128)
	binary.BigEndian.PutUint32(v[0:], uint32(writer))
	binary.BigEndian.PutUint32(v[4:], uint32(seq))
	binary.BigEndian.PutUint32(v[8:], uint32(i))
	for j := 12; j < len(v); j++ {
		v[j] = byte(writer*31 + seq*7 + i + j)
	}
	return v
}

// TestCrashChild is the child side of TestCrashSafety: it appends with
// fsync=always from several goroutines and prints each acknowledged batch.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrashSafety")
	}
	l, err := Open(dir, Options{SegmentBytes: 64 << 10})
	if err != nil {
		fmt.Fprintf(os.Stdout, "error %v\n", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				n := 1 + (seq+w)%5
				var b record.Builder
				for i := range n {
					b.Add(record.Record{Timestamp: time.Now().UnixMilli(), Value: crashValue(w, seq, i)})
				}
				res, err := l.Append(b.Build())
				if err != nil {
					fmt.Fprintf(os.Stdout, "error %v\n", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d %d %d\n", res.BaseOffset, n, w, seq)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

type ack struct {
	base          int64
	n, writer, sq int
}

// TestCrashSafety kills an appending child with SIGKILL at random moments,
// reopens its log and checks every acknowledged batch is there, in order and
// intact, and that nothing half-written is visible.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	deadline := time.Now().Add(20 * time.Second)
	var acks []ack
	rounds := 0
	for rounds < 25 && time.Now().Before(deadline) {
		rounds++
		acks = append(acks, runCrashChild(t, dir, time.Duration(5+rng.IntN(120))*time.Millisecond)...)

		l, err := Open(dir, Options{SegmentBytes: 64 << 10})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", rounds, err)
		}
		recs := readAll(t, l, 0)
		if int64(len(recs)) != l.EndOffset() {
			t.Fatalf("round %d: %d records readable, end offset %d", rounds, len(recs), l.EndOffset())
		}
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("round %d: record %d has offset %d", rounds, i, r.Offset)
			}
		}
		for _, a := range acks {
			for i := range a.n {
				off := a.base + int64(i)
				if off >= int64(len(recs)) {
					t.Fatalf("round %d: acknowledged offset %d lost (end %d)", rounds, off, len(recs))
				}
				if want := crashValue(a.writer, a.sq, i); string(recs[off].Value) != string(want) {
					t.Fatalf("round %d: offset %d holds the wrong record", rounds, off)
				}
			}
		}
		// Unacknowledged batches that survived must be whole: every record
		// names a batch whose records all sit together.
		for i := 0; i < len(recs); {
			v := recs[i].Value
			w, sq := binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])
			n := 1 + (int(sq)+int(w))%5
			for j := range n {
				if i+j >= len(recs) || string(recs[i+j].Value) != string(crashValue(int(w), int(sq), j)) {
					t.Fatalf("round %d: batch at %d is not whole", rounds, i)
				}
			}
			i += n
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acks) == 0 {
		t.Fatal("the child acknowledged nothing")
	}
	t.Logf("%d rounds, %d acknowledged batches checked", rounds, len(acks))
}

// runCrashChild starts the child on dir, lets it run for d after its first
// acknowledgement, kills it with SIGKILL and returns what it acknowledged.
func runCrashChild(t *testing.T, dir string, d time.Duration) []ack {
	t.Helper()
	child := crashtest.Child{Run: "^TestCrashChild$", Env: []string{crashChildEnv + "=" + dir}}
	isAck := func(line string) bool { return strings.HasPrefix(line, "ack ") }
	var acks []ack
	for _, line := range child.RunAndKill(t, isAck, d) {
		f := strings.Fields(line)
		if len(f) != 5 || f[0] != "ack" {
			continue
		}
		var a ack
		a.base, _ = strconv.ParseInt(f[1], 10, 64)
		a.n, _ = strconv.Atoi(f[2])
		a.writer, _ = strconv.Atoi(f[3])
		a.sq, _ = strconv.Atoi(f[4])
		acks = append(acks, a)
	}
	return acks
}
