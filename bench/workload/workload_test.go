package workload

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWorkloadFiles(t *testing.T) {
	files, err := LoadDir(filepath.Join("..", "workloads"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		names[f.Name] = true
		if len(f.Sizes) != 2 || f.Sizes[0] != 128 || f.Sizes[1] != 1024 {
			t.Errorf("%s: sizes %v, want 128 and 1024", f.Name, f.Sizes)
		}
	}
	for _, want := range []string{"queue-durable", "pubsub-fanout-1", "pubsub-fanout-4", "stream-append-replay", "latency-10k"} {
		if !names[want] {
			t.Errorf("no workload %s", want)
		}
	}
}

func TestParse(t *testing.T) {
	f, err := Parse([]byte(`name = "q"
pattern = "latency"
sizes = [128, 1024]
rate = 10000
warmup = "1s"
duration = "5s"`))
	if err != nil {
		t.Fatal(err)
	}
	specs := f.Specs()
	if len(specs) != 2 || specs[1].Name != "q/1KiB" || specs[0].Size != 128 || specs[0].Duration != 5*time.Second ||
		specs[0].Producers != 1 || specs[0].Partitions != 1 || specs[0].Durability != Durable || !specs[0].QueueLike() {
		t.Fatalf("specs %+v", specs)
	}
}

func TestParseErrors(t *testing.T) {
	base := "name = \"w\"\npattern = \"queue\"\nsizes = [128]\nduration = \"1s\"\n"
	for _, tc := range []struct{ text, want string }{
		{base + "bogus = 1\n", "unknown setting"},
		{strings.Replace(base, `"queue"`, `"mesh"`, 1), "pattern"},
		{strings.Replace(base, "[128]", "[8]", 1), "size 8"},
		{base + "messages = 10\n", "exactly one of duration and messages"},
		{strings.Replace(base, `"queue"`, `"latency"`, 1), "fixed rate"},
		{base + "subscriptions = 2\n", "fans out"},
		{strings.Replace(base, `"queue"`, `"pubsub"`, 1) + "consumers = 2\n", "one consumer per subscription"},
		{base + "durability = \"maybe\"\n", "durability"},
		{base + "rate = -1\n", "rate"},
	} {
		if _, err := Parse([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
}
