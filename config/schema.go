package config

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
)

// Schema is the YAML form of dsl.Schema: how the events table's columns map
// to the language.
type Schema struct {
	// Time is the DateTime column holding the event's time.
	Time string `yaml:"time"`
	// Labels are string columns usable in matchers and by (...).
	Labels []string `yaml:"labels"`
	// Fields maps selector names to a column or a list of columns added up.
	Fields map[string]Columns `yaml:"fields"`
	// RequestID is the column holding each call's request id (optional):
	// with it, a rule's evidence can list example calls.
	RequestID string `yaml:"request_id"`
	// Units gives fields the unit the status page writes after their
	// values: {latency_ms: ms, cost: "¥"}.
	Units map[string]string `yaml:"units"`
}

// DSL returns the schema for the dsl package.
func (s Schema) DSL() dsl.Schema {
	d := dsl.Schema{Time: s.Time, Labels: s.Labels, Fields: map[string]dsl.Columns{}, RequestID: s.RequestID, Units: s.Units}
	for k, v := range s.Fields {
		d.Fields[k] = dsl.Columns(v)
	}
	return d
}

// Columns is one column name or a list of columns to add up: in YAML a
// scalar (`cost: cost`) or a sequence (`total_tokens: [input_tokens, output_tokens]`).
type Columns []string

// UnmarshalYAML accepts a scalar or a sequence of column names.
func (c *Columns) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		*c = Columns{node.Value}
		return nil
	case yaml.SequenceNode:
		var many []string
		if err := node.Decode(&many); err == nil {
			*c = many
			return nil
		}
	}
	return fmt.Errorf("line %d: a field is a column name or a list of column names to add up", node.Line)
}
