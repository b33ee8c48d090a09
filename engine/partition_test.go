package engine

import "testing"

// Vectors from Kafka's own tests of Utils.murmur2.
func TestMurmur2MatchesKafka(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
		"1":   -1993445489,
		"12":  126087238,
		"123": -267702483,
	} {
		if got := murmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
	// toPositive(-973932308) = 1173551340, and 1173551340 % 7 = 3.
	if p := KeyPartition([]byte("21"), 7); p != 3 {
		t.Errorf("KeyPartition(21, 7) = %d", p)
	}
}
