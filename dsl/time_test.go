package dsl_test

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
)

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     time.Time
		err      string
	}{
		{"RFC 3339 is read in UTC", "2025-11-24T17:00:00+01:00", time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC), ""},
		{"unix seconds are read", "1764000000", time.Unix(1764000000, 0).UTC(), ""},
		{"fractional unix seconds keep their nanoseconds", " 1764000000.25 ", time.Unix(1764000000, 250_000_000).UTC(), ""},
		{"a time that is not finite is refused", "NaN", time.Time{}, `time "NaN" is not finite`},
		{"anything else says what to write", "yesterday", time.Time{}, `time "yesterday": write RFC 3339`},
		{"unix seconds past int64 are refused, not wrapped around", "1e19", time.Time{}, `time "1e19" is out of range`},
		{"a far time parses (a silence may end in 9999)", "9999-12-31T23:59:59Z", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dsl.ParseTime(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestTimeInRange(t *testing.T) {
	for in, ok := range map[time.Time]bool{
		time.Date(2262, 4, 11, 23, 47, 16, 854_000_000, time.UTC): true,
		time.Date(2262, 4, 11, 23, 47, 16, 855_000_000, time.UTC): false,
		time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC):               true,
		time.Date(1677, 1, 1, 0, 0, 0, 0, time.UTC):               false,
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC):             false,
	} {
		if err := dsl.TimeInRange(in); (err == nil) != ok {
			t.Errorf("%s: %v, want in range %v", in, err, ok)
		}
	}
}

func TestDuration(t *testing.T) {
	t.Run("Prometheus' notation is parsed, days included", func(t *testing.T) {
		if d, err := dsl.ParseDuration("1d1h30m"); err != nil || d != 25*time.Hour+30*time.Minute {
			t.Fatalf("got %v, %v", d, err)
		}
	})
	t.Run("a YAML duration decodes and prints in the same notation", func(t *testing.T) {
		var v struct {
			D dsl.Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal([]byte("d: 90m\n"), &v); err != nil || v.D.D() != 90*time.Minute {
			t.Fatalf("got %v, %v", v.D, err)
		}
		if s := v.D.String(); s != "1h30m" {
			t.Fatalf("prints %q, want 1h30m", s)
		}
	})
	t.Run("a YAML value that is not a duration names its line and what to write", func(t *testing.T) {
		var v struct {
			D dsl.Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte("# comment\nd: soon\n"), &v)
		if err == nil || err.Error() != `line 2: "soon" is not a duration; write e.g. 30s, 5m, 1h or 1d` {
			t.Fatalf("error %v", err)
		}
	})
}
