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
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: write RFC 3339 (2025-11-24T16:00:00Z) or unix seconds", s)
	}
	return t.UTC(), nil
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
