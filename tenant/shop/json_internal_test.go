package shop

import (
	"testing"
	"time"
)

// TestFormatTime pins §1.3's datetime format against Django's encoder.
func TestFormatTime(t *testing.T) {
	t.Parallel()
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		chicago = time.FixedZone("CST", -6*3600)
	}
	base := time.Date(2026, 1, 2, 8, 5, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"whole second", base, "2026-01-02T08:05:00Z"},
		{"milliseconds", base.Add(123 * time.Millisecond), "2026-01-02T08:05:00.123Z"},
		{"microseconds are truncated", base.Add(123456 * time.Microsecond), "2026-01-02T08:05:00.123Z"},
		{"under a millisecond is still a fraction", base.Add(500 * time.Microsecond), "2026-01-02T08:05:00.000Z"},
		{"under a microsecond is not stored", base.Add(999), "2026-01-02T08:05:00Z"},
		{"other zones are written in UTC", base.Add(time.Millisecond).In(chicago), "2026-01-02T08:05:00.001Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := formatTime(tc.in); got != tc.want {
				t.Errorf("formatTime(%v) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}
