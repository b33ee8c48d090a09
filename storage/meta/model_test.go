package meta

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestStoreModel applies random batches of puts, deletes and prefix deletes,
// with checkpoints and reopens in between, and checks Get and Scan against a
// plain map after every step.
func TestStoreModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		opts := Options{SegmentBytes: 4096, CheckpointBytes: rapid.Int64Range(512, 1<<16).Draw(rt, "checkpointBytes")}
		s, err := Open(dir, opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { s.Close() }()
		model := map[string]string{}
		key := rapid.SampledFrom([]string{"t/a", "t/a/0", "t/a/1", "t/b", "t/b/0", "s/x", "s/x/ack", "s/y", ""})

		check := func(rt *rapid.T) {
			var got []kv
			s.Scan("", func(k string, v []byte) bool {
				got = append(got, kv{k, string(v)})
				return true
			})
			var want []kv
			for _, k := range slices.Sorted(maps.Keys(model)) {
				want = append(want, kv{k, model[k]})
			}
			if !slices.Equal(got, want) {
				rt.Fatalf("state %v, model %v", got, want)
			}
			prefix := key.Draw(rt, "scanPrefix")
			var n int
			s.Scan(prefix, func(k string, _ []byte) bool {
				if !strings.HasPrefix(k, prefix) {
					rt.Fatalf("scan %q returned %q", prefix, k)
				}
				n++
				return true
			})
			wantN := 0
			for k := range model {
				if strings.HasPrefix(k, prefix) {
					wantN++
				}
			}
			if n != wantN {
				rt.Fatalf("scan %q: %d keys, model %d", prefix, n, wantN)
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"apply": func(rt *rapid.T) {
				var b Batch
				next := maps.Clone(model)
				for range rapid.IntRange(1, 6).Draw(rt, "ops") {
					k := key.Draw(rt, "key")
					switch rapid.IntRange(0, 2).Draw(rt, "kind") {
					case 0:
						v := rapid.StringMatching(`[a-z0-9]{0,12}`).Draw(rt, "value")
						b.Put(k, []byte(v))
						next[k] = v
					case 1:
						b.Delete(k)
						delete(next, k)
					case 2:
						b.DeletePrefix(k)
						for mk := range next {
							if strings.HasPrefix(mk, k) {
								delete(next, mk)
							}
						}
					}
				}
				d := Written
				if rapid.Bool().Draw(rt, "synced") {
					d = Synced
				}
				if err := s.Apply(&b, d); err != nil {
					rt.Fatal(err)
				}
				model = next
				check(rt)
			},
			"checkpoint": func(rt *rapid.T) {
				if err := s.Checkpoint(); err != nil {
					rt.Fatal(err)
				}
				check(rt)
			},
			"reopen": func(rt *rapid.T) {
				if err := s.Close(); err != nil {
					rt.Fatal(err)
				}
				if s, err = Open(dir, opts); err != nil {
					rt.Fatal(err)
				}
				check(rt)
			},
		})
	})
}
