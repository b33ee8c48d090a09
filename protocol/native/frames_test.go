package native

import (
	"slices"
	"testing"
)

func TestFrames(t *testing.T) {
	for _, tc := range []struct {
		sizes []int
		want  [][2]int
	}{
		{nil, nil},
		{[]int{10}, [][2]int{{0, 1}}},
		{[]int{maxFrame + 5}, [][2]int{{0, 1}}},
		{[]int{maxFrame / 2, maxFrame / 2, 1}, [][2]int{{0, 2}, {2, 3}}},
		{[]int{1, maxFrame, 1}, [][2]int{{0, 1}, {1, 2}, {2, 3}}},
	} {
		var got [][2]int
		measured := make([]int, len(tc.sizes))
		frames(len(tc.sizes), func(i int) (int, int) { measured[i]++; return tc.sizes[i], i + 1 },
			func(lo, hi, msgs int) error {
				got = append(got, [2]int{lo, hi})
				// item i holds i+1 messages
				if want := (hi*(hi+1) - lo*(lo+1)) / 2; msgs != want {
					t.Errorf("sizes %v: frame [%d,%d) holds %d messages, want %d", tc.sizes, lo, hi, msgs, want)
				}
				return nil
			})
		if !slices.Equal(got, tc.want) {
			t.Errorf("sizes %v: frames %v, want %v", tc.sizes, got, tc.want)
		}
		for i, m := range measured {
			if m != 1 {
				t.Errorf("sizes %v: item %d measured %d times", tc.sizes, i, m)
			}
		}
	}
}
