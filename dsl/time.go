package dsl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// ParseTime reads an event or evaluation time: RFC 3339, or unix seconds
// (integer or fractional). The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("time %q is not finite", s)
		}
		if math.Abs(f) >= maxUnixSeconds {
			return time.Time{}, fmt.Errorf("time %q is out of range: write unix seconds below %g", s, maxUnixSeconds)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: write RFC 3339 (2025-11-24T16:00:00Z) or unix seconds", s)
	}
	return t.UTC(), nil
}

// maxUnixSeconds bounds unix seconds before they are converted to int64,
// which would wrap around past it. A time that parses may still be outside
// the times callwatch evaluates at (TimeInRange): a silence may end in 9999.
const maxUnixSeconds = 9e18

// The times callwatch evaluates at: PromQL's engine counts evaluation
// times in nanoseconds, which overflow int64 before 1678 and after 2262 (it
// would find no sample there, rather than fail).
var (
	minTime = time.Unix(0, math.MinInt64).Truncate(time.Millisecond).Add(time.Millisecond)
	maxTime = time.Unix(0, math.MaxInt64)
)

// TimeInRange returns an error for a time outside the range callwatch
// evaluates in (1678 to 2262), saying so.
func TimeInRange(t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("time %s is out of range: callwatch evaluates between 1678 and 2262", t.UTC().Format(time.RFC3339))
	}
	return nil
}

// ParseDuration reads a duration in Prometheus' notation (30s, 5m, 1h30m,
// 1d, 1w), the notation of windows and offsets in expressions; its error
// says what to write.
func ParseDuration(s string) (time.Duration, error) {
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write e.g. 30s, 5m, 1h or 1d", s)
	}
	return time.Duration(d), nil
}

// Duration is a duration in Prometheus' notation in a YAML file: the
// configuration, the exporter's, rule unit tests. It prints in the same
// notation.
type Duration time.Duration

// UnmarshalYAML parses the node with ParseDuration. Its error names the
// line, which yaml.v3 otherwise drops for an UnmarshalYAML error; a decoder
// that reports positions itself calls ParseDuration instead.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	v, err := ParseDuration(node.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", node.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints the duration in Prometheus' notation.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String is the duration in Prometheus' notation (1h30m, 1d).
func (d Duration) String() string { return model.Duration(d).String() }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
