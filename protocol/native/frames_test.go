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
		frames(len(tc.sizes), func(i int) int { return tc.sizes[i] }, func(lo, hi int) error {
			got = append(got, [2]int{lo, hi})
			return nil
		})
		if !slices.Equal(got, tc.want) {
			t.Errorf("sizes %v: frames %v, want %v", tc.sizes, got, tc.want)
		}
	}
}
