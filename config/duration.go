package config

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Duration is a YAML duration in Prometheus' notation (30s, 5m, 1h, 1d, 1w).
// Its decoding errors carry the line, which yaml.v3 otherwise drops.
type Duration time.Duration

// UnmarshalYAML parses a Prometheus duration.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	md, err := model.ParseDuration(node.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration; write e.g. 30s, 5m, 1h or 1d", node.Line, node.Value)
	}
	*d = Duration(md)
	return nil
}

// MarshalYAML prints the duration in Prometheus' notation.
func (d Duration) MarshalYAML() (any, error) { return model.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
