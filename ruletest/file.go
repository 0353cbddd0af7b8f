package ruletest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

// testFile is a unit-test file: promtool's format, with events as input.
type testFile struct {
	RuleFiles          []string     `yaml:"rule_files"`
	EvaluationInterval dsl.Duration `yaml:"evaluation_interval"`
	GroupEvalOrder     []string     `yaml:"group_eval_order"`
	FuzzyCompare       bool         `yaml:"fuzzy_compare"`
	Tests              []testSpec   `yaml:"tests"`
}

// testSpec is one test: its input events and what to expect of them.
type testSpec struct {
	Pos            rulefmt.Position  `yaml:"-"`
	Name           string            `yaml:"name"`
	Interval       dsl.Duration      `yaml:"interval"`
	StartTimestamp timestamp         `yaml:"start_timestamp"`
	ExternalLabels map[string]string `yaml:"external_labels"`
	ExternalURL    string            `yaml:"external_url"`
	// InputEvents and Events are kept as nodes: they are read against the
	// schema (input.go), with their positions.
	InputEvents    []yaml.Node `yaml:"input_events"`
	Events         []yaml.Node `yaml:"events"`
	AlertRuleTests []alertTest `yaml:"alert_rule_test"`
	ExprTests      []exprTest  `yaml:"expr_test"`
}

// alertTest expects the alerts of one alerting rule at one time.
type alertTest struct {
	Pos       rulefmt.Position `yaml:"-"`
	EvalTime  dsl.Duration     `yaml:"eval_time"`
	Alertname string           `yaml:"alertname"`
	ExpAlerts []expAlert       `yaml:"exp_alerts"`
	// ExpNotifications, when given, are the notifications the rule hands
	// to its channels at this evaluation (callwatch's).
	ExpNotifications *[]expNotification `yaml:"exp_notifications"`
}

// expNotification is one expected notification: the alert's status
// (firing or resolved), labels it must carry, and optionally its channels
// (comma-separated, as routed: the tier's, else the rule's notify:, else
// "default").
type expNotification struct {
	Pos       rulefmt.Position  `yaml:"-"`
	Status    string            `yaml:"status"`
	ExpLabels map[string]string `yaml:"exp_labels"`
	Channel   string            `yaml:"channel"`
}

// expAlert is one expected alert. ExpState and ExpValue are callwatch's.
type expAlert struct {
	Pos            rulefmt.Position  `yaml:"-"`
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
	ExpState       alertState        `yaml:"exp_state"`
	ExpValue       *float64          `yaml:"exp_value"`
}

// exprTest expects the result of an expression at one time.
type exprTest struct {
	Pos        rulefmt.Position `yaml:"-"`
	Expr       string           `yaml:"expr"`
	EvalTime   dsl.Duration     `yaml:"eval_time"`
	ExpSamples []expSample      `yaml:"exp_samples"`
}

// expSample is one expected sample; Labels is a series such as
// {tenant_id="acme"}, empty for none.
type expSample struct {
	Pos    rulefmt.Position `yaml:"-"`
	Labels string           `yaml:"labels"`
	Value  float64          `yaml:"value"`
}

// timestamp is an RFC 3339 time or unix seconds.
type timestamp struct{ time.Time }

func (t *timestamp) UnmarshalYAML(n *yaml.Node) error {
	v, err := dsl.ParseTime(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%q is not a time; write RFC 3339 (2025-11-24T16:00:00Z) or unix seconds", n.Value)
	}
	t.Time = v
	return nil
}

// alertState is an expected alert's state: firing (the default) or pending.
type alertState engine.AlertState

func (s *alertState) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "firing":
		*s = alertState(engine.StateFiring)
	case "pending":
		*s = alertState(engine.StatePending)
	default:
		return fmt.Errorf("%q is not an alert state; write pending or firing", n.Value)
	}
	return nil
}

// keyHints help users coming from promtool, whose names differ here.
var keyHints = map[string]string{
	"input_series":     "callwatch tests take events, not series: use input_events (and events for irregular data)",
	"promql_expr_test": "callwatch calls it expr_test",
}

// decoder decodes YAML nodes into the structs above strictly: unknown and
// repeated keys, and values of the wrong kind, are errors at file:line:col.
type decoder struct {
	file string
	errs rulefmt.Errors
}

var (
	nodeType     = reflect.TypeFor[yaml.Node]()
	positionType = reflect.TypeFor[rulefmt.Position]()
	durationType = reflect.TypeFor[dsl.Duration]()
	unmarshaler  = reflect.TypeFor[yaml.Unmarshaler]()
)

func (d *decoder) pos(n *yaml.Node) rulefmt.Position {
	return rulefmt.Position{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &rulefmt.FileError{Pos: d.pos(n), Err: fmt.Errorf(format, args...)})
}

// decode fills v (addressable) from n; key names the value in messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if isNull(n) {
		return // an empty value keeps the default
	}
	if v.Type() == durationType {
		// Parsed here rather than by its UnmarshalYAML, whose error names
		// the line: this decoder gives file:line:col itself.
		dur, err := dsl.ParseDuration(n.Value)
		if err != nil {
			d.errorf(n, "%s: %v", key, err)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshaler) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.errorf(n, "%s: %v", key, err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), key)
		v.Set(p)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping", key)
			return
		}
		d.decodeStruct(n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s must be a list", key)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", key, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping of names to values", key)
			return
		}
		m := reflect.MakeMap(v.Type())
		for k, val := range mappingPairs(n, func(k *yaml.Node) { d.errorf(k, "%s: key %q appears twice", key, k.Value) }) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, key+"."+k.Value)
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		v.Set(m)
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s must be %s", key, kindName(v.Kind()))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, "%s: %q is not %s", key, n.Value, kindName(v.Kind()))
		}
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value) {
	t := v.Type()
	fields := map[string]int{}
	var known []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		switch {
		case f.Type == positionType:
			v.Field(i).Set(reflect.ValueOf(d.pos(n)))
		case tag != "" && tag != "-":
			fields[tag] = i
			known = append(known, tag)
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		idx, ok := fields[k.Value]
		switch {
		case !ok:
			d.errorf(k, "unknown key %q; %s", k.Value, keyHint(k.Value, known))
		case seen[k.Value]:
			d.errorf(k, "key %q appears twice", k.Value)
		default:
			d.decode(val, v.Field(idx), k.Value)
		}
		seen[k.Value] = true
	}
}

// keyHint suggests the known key nearest to an unknown one.
func keyHint(key string, known []string) string {
	if h, ok := keyHints[key]; ok {
		return h
	}
	if best := rulefmt.ClosestKey(key, known); best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	sorted := slices.Clone(known)
	slices.Sort(sorted)
	return "known keys: " + strings.Join(sorted, ", ")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	}
	return "a string"
}

// parseTestFile decodes a test file strictly and applies its defaults.
func parseTestFile(file string, data []byte) (*testFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	tf := &testFile{}
	d := &decoder{file: file}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			d.errorf(root, "a test file is a mapping with rule_files: and tests:")
		} else {
			d.decodeStruct(root, reflect.ValueOf(tf).Elem())
		}
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	if tf.EvaluationInterval <= 0 {
		tf.EvaluationInterval = dsl.Duration(time.Minute)
	}
	for i := range tf.Tests {
		if tf.Tests[i].Interval <= 0 {
			tf.Tests[i].Interval = tf.EvaluationInterval
		}
	}
	return tf, nil
}

// yamlError positions a YAML syntax error, which yaml.v3 reports by line only.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if _, e := fmt.Sscanf(msg, "line %d:", &line); e == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return rulefmt.Errors{&rulefmt.FileError{Pos: rulefmt.Position{File: file, Line: line, Col: 1}, Err: fmt.Errorf("invalid YAML: %s", msg)}}
}
