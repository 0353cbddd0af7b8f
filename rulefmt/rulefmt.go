package rulefmt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/template"
	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
)

// GroupSpec is one rule group as written in a rule file: Prometheus' format.
type GroupSpec struct {
	Name        string
	File        string
	Interval    time.Duration // 0 means the default evaluation interval
	QueryOffset time.Duration
	Limit       int
	Labels      map[string]string
	Rules       []*RuleSpec

	// SLO and Budget are the objective or budget the group was generated
	// from (slos: and budgets: of the file); nil for a written group.
	SLO    *SLOSpec
	Budget *BudgetSpec
}

// RuleSpec is one alerting or recording rule: Prometheus' fields plus
// callwatch's extensions. Expr is the checked and planned expression.
type RuleSpec struct {
	Alert, Record string
	ExprText      string
	Expr          *dsl.Expr
	For           time.Duration
	KeepFiringFor time.Duration
	Labels        map[string]string
	Annotations   map[string]string

	// Severity is info|warning|error|critical (or mapped from the baseline's
	// priority low|medium|high|critical); it becomes the severity label.
	Severity        Severity
	Cooldown        time.Duration
	MaxAlertsPerDay int
	Notify          []string
	NoDataState     StatePolicy
	ErrorState      StatePolicy
	Debug           bool

	// Quality holds the noise controls (thresholds, hysteresis, per-group
	// no data, min_events, new-group grace, repeat_interval); nil for a
	// plain Prometheus rule, whose behaviour they never change.
	Quality *Quality

	// Evidence, when set, asks for what explains an alert when it starts
	// firing (top label values, example calls); nil for none.
	Evidence *Evidence

	// Pos is where the rule starts in its file.
	Pos Position
	// Warnings are what the static checks prove about the rule without
	// refusing it (dsl.Expr.Findings: an expression that is always empty),
	// as *FileError at their position in the file.
	Warnings []error
}

// Name returns the alert or record name.
func (r *RuleSpec) Name() string {
	if r.Alert != "" {
		return r.Alert
	}
	return r.Record
}

// StatePolicy says what an alerting rule does when its query returns no
// data or fails.
type StatePolicy string

// The policies. KeepLast keeps every alert as it was; OK treats the
// evaluation as an empty result (alerts resolve as in Prometheus); Alerting
// raises an alert for the condition.
const (
	KeepLast StatePolicy = "keep_last"
	OK       StatePolicy = "ok"
	Alerting StatePolicy = "alerting"
)

// Position is a place in a file.
type Position struct {
	File      string
	Line, Col int
}

func (p Position) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// FileError is a problem in a rule file, with its position and the group and
// rule it is in.
type FileError struct {
	Pos         Position
	Group, Rule string
	Err         error
}

func (e *FileError) Error() string {
	var sb strings.Builder
	sb.WriteString(e.Pos.String())
	sb.WriteString(": ")
	if e.Group != "" {
		fmt.Fprintf(&sb, "group %q, ", e.Group)
	}
	if e.Rule != "" {
		fmt.Fprintf(&sb, "rule %q: ", e.Rule)
	} else if e.Group != "" {
		s := sb.String()
		sb.Reset()
		sb.WriteString(strings.TrimSuffix(s, ", ") + ": ")
	}
	sb.WriteString(e.Err.Error())
	return sb.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// Errors is a list of problems found while loading rules.
type Errors []error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// LoadOptions configure rule loading.
type LoadOptions struct {
	Schema dsl.Schema
	// Channels are the notifier names rules may route to; nil skips the check.
	Channels []string
	// Limits bound every expression (see dsl.Limits).
	Limits dsl.Limits
	// Bucket and LateWindow are the incremental path's
	// (clickhouse.incremental), zero when it is off: windows that cannot
	// use it well are warned about.
	Bucket, LateWindow time.Duration
}

// LoadFiles expands the globs and loads every rule file. All problems are
// returned together; callers must not use the groups when err != nil.
func LoadFiles(globs []string, opts LoadOptions) ([]*GroupSpec, error) {
	var files []string
	for _, g := range globs {
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("rule_files: bad pattern %q: %w", g, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	files = slices.Compact(files)
	var groups []*GroupSpec
	var errs Errors
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("read rule file: %w", err))
			continue
		}
		gs, err := ParseRuleFile(f, data, opts)
		if err != nil {
			errs = append(errs, unwrapErrors(err)...)
			continue
		}
		groups = append(groups, gs...)
	}
	seen := map[string]string{}
	for _, g := range groups {
		if prev, dup := seen[g.Name]; dup {
			errs = append(errs, &FileError{Pos: Position{File: g.File, Line: 1, Col: 1}, Group: g.Name,
				Err: fmt.Errorf("group name already used in %s; group names must be unique across rule files", prev)})
		}
		seen[g.Name] = g.File
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return groups, nil
}

func unwrapErrors(err error) []error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	return []error{err}
}

var (
	fileKeys  = []string{"groups", "slos", "budgets"}
	groupKeys = []string{"name", "interval", "query_offset", "limit", "labels", "rules"}
	ruleKeys  = []string{"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations",
		"severity", "priority", "cooldown", "max_alerts_per_day", "notify", "no_data_state", "error_state", "debug",
		"thresholds", "recover_below", "recover_above", "min_events", "new_group_grace", "repeat_interval", "no_data_window",
		"evidence"}
)

// ParseRuleFile parses and checks one rule file. Every problem is reported
// as a *FileError with file:line:col, group and rule.
func ParseRuleFile(file string, data []byte, opts LoadOptions) ([]*GroupSpec, error) {
	if opts.Schema.Time == "" {
		opts.Schema = dsl.DefaultSchema()
	}
	p := &fileParser{file: file, lines: strings.Split(string(data), "\n"), opts: opts}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{p.yamlErr(err)}
	}
	if len(doc.Content) == 0 {
		return nil, nil // an empty file has no groups
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, Errors{p.errAt(root, "", "", "a rule file is a mapping with a groups: list (and slos: and budgets: lists)")}
	}
	p.checkKeys(root, fileKeys, "", "")
	var groups []*GroupSpec
	names := map[string]bool{}
	if gn := mapValue(root, "groups"); gn != nil {
		if gn.Kind != yaml.SequenceNode {
			p.add(p.errAt(gn, "", "", "groups must be a list"))
		} else {
			for _, n := range gn.Content {
				g := p.group(n)
				if g == nil {
					continue
				}
				if names[g.Name] {
					p.add(p.errAt(n, g.Name, "", "group name is used twice in this file"))
				}
				names[g.Name] = true
				groups = append(groups, g)
			}
		}
	}
	var generated []*GroupSpec
	if sn := mapValue(root, "slos"); sn != nil {
		generated = append(generated, p.slos(sn)...)
	}
	if bn := mapValue(root, "budgets"); bn != nil {
		generated = append(generated, p.budgets(bn)...)
	}
	for _, g := range generated {
		if names[g.Name] {
			pos := g.Rules[0].Pos
			p.add(&FileError{Pos: pos, Group: g.Name, Err: errors.New("group name is used twice in this file (an SLO's group is slo:NAME, a budget's budget:NAME)")})
		}
		names[g.Name] = true
		groups = append(groups, g)
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			var a, b *FileError
			errors.As(p.errs[i], &a) // every error of the parser is a *FileError (errAt, yamlErr)
			errors.As(p.errs[j], &b)
			if a.Pos.Line != b.Pos.Line {
				return a.Pos.Line < b.Pos.Line
			}
			return a.Pos.Col < b.Pos.Col
		})
		return nil, p.errs
	}
	return groups, nil
}

type fileParser struct {
	file  string
	lines []string
	opts  LoadOptions
	errs  Errors
}

func (p *fileParser) add(err error) { p.errs = append(p.errs, err) }

func (p *fileParser) errAt(n *yaml.Node, group, rule, format string, args ...any) *FileError {
	return &FileError{Pos: Position{File: p.file, Line: n.Line, Col: n.Column}, Group: group, Rule: rule, Err: fmt.Errorf(format, args...)}
}

func (p *fileParser) yamlErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if _, e := fmt.Sscanf(msg, "line %d:", &line); e == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return &FileError{Pos: Position{File: p.file, Line: line, Col: 1}, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// checkKeys reports unknown and duplicate keys of a mapping.
func (p *fileParser) checkKeys(n *yaml.Node, allowed []string, group, rule string) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case !slices.Contains(allowed, k.Value):
			hint := "known keys: " + strings.Join(allowed, ", ")
			if s := dsl.Closest(k.Value, allowed); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			p.add(p.errAt(k, group, rule, "unknown key %q; %s", k.Value, hint))
		case seen[k.Value]:
			p.add(p.errAt(k, group, rule, "key %q appears twice", k.Value))
		}
		seen[k.Value] = true
	}
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (p *fileParser) group(n *yaml.Node) *GroupSpec {
	if n.Kind != yaml.MappingNode {
		p.add(p.errAt(n, "", "", "a group is a mapping with name: and rules:"))
		return nil
	}
	g := &GroupSpec{File: p.file}
	nameNode := mapValue(n, "name")
	if nameNode == nil || strings.TrimSpace(nameNode.Value) == "" {
		p.add(p.errAt(n, "", "", "a group needs a name"))
		return nil
	}
	g.Name = nameNode.Value
	p.checkKeys(n, groupKeys, g.Name, "")
	if v := mapValue(n, "interval"); v != nil {
		before := len(p.errs)
		g.Interval = p.duration(v, g.Name, "", "interval")
		if g.Interval == 0 && len(p.errs) == before {
			p.add(p.errAt(v, g.Name, "", "interval must be positive, e.g. 1m"))
		}
	}
	if v := mapValue(n, "query_offset"); v != nil {
		g.QueryOffset = p.duration(v, g.Name, "", "query_offset")
	}
	if v := mapValue(n, "limit"); v != nil {
		if err := v.Decode(&g.Limit); err != nil || g.Limit < 0 {
			p.add(p.errAt(v, g.Name, "", "limit must be a non-negative integer (0 = no limit)"))
		}
	}
	if v := mapValue(n, "labels"); v != nil {
		g.Labels = p.labelMap(v, g.Name, "", "labels", false)
	}
	rn := mapValue(n, "rules")
	if rn == nil || rn.Kind != yaml.SequenceNode {
		at := n
		if rn != nil {
			at = rn
		}
		p.add(p.errAt(at, g.Name, "", "a group needs a rules: list"))
		return g
	}
	seen := map[string]bool{}
	for _, r := range rn.Content {
		rule := p.rule(r, g)
		if rule == nil {
			continue
		}
		key := rule.Name() + fmt.Sprint(sortedPairs(rule.Labels))
		if seen[key] {
			p.add(p.errAt(r, g.Name, rule.Name(), "duplicate rule: another rule of this group has the same name and labels"))
		}
		seen[key] = true
		g.Rules = append(g.Rules, rule)
	}
	return g
}

func (p *fileParser) duration(v *yaml.Node, group, rule, key string) time.Duration {
	d, err := dsl.ParseDuration(v.Value)
	if err != nil {
		p.add(p.errAt(v, group, rule, "%s: %v", key, err))
		return 0
	}
	return d
}

func (p *fileParser) labelMap(v *yaml.Node, group, rule, key string, templates bool) map[string]string {
	if v.Kind != yaml.MappingNode {
		p.add(p.errAt(v, group, rule, "%s must be a mapping of names to values", key))
		return nil
	}
	m := map[string]string{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if !model.LegacyValidation.IsValidLabelName(k.Value) || strings.HasPrefix(k.Value, "__") {
			p.add(p.errAt(k, group, rule, "%s: %q is not a valid label name (letters, digits and _, not starting with a digit or __)", key, k.Value))
			continue
		}
		if val.Kind != yaml.ScalarNode {
			p.add(p.errAt(val, group, rule, "%s.%s must be a string", key, k.Value))
			continue
		}
		if templates {
			// Named after the key, so the error reads "template: annotations.summary:1: ...".
			tmpl := template.NewTemplateExpander(context.Background(), TemplateDefs+val.Value, key+"."+k.Value, nil, 0, nil, nil, nil)
			if err := tmpl.ParseTest(); err != nil {
				p.add(p.errAt(val, group, rule, "%v", err))
			}
		}
		m[k.Value] = val.Value
	}
	return m
}

// TemplateDefs are the variables Prometheus defines for alert templates,
// prepended to every label and annotation template: checked here, expanded
// by the engine.
const TemplateDefs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

func (p *fileParser) rule(n *yaml.Node, g *GroupSpec) *RuleSpec {
	if n.Kind != yaml.MappingNode {
		p.add(p.errAt(n, g.Name, "", "a rule is a mapping with alert: or record: and expr:"))
		return nil
	}
	r := &RuleSpec{Pos: Position{File: p.file, Line: n.Line, Col: n.Column}, NoDataState: OK, ErrorState: KeepLast}
	str := func(key string) (string, *yaml.Node) {
		v := mapValue(n, key)
		if v == nil {
			return "", nil
		}
		if v.Kind != yaml.ScalarNode {
			p.add(p.errAt(v, g.Name, r.Name(), "%s must be a string", key))
			return "", v
		}
		return v.Value, v
	}
	r.Alert, _ = str("alert")
	r.Record, _ = str("record")
	name := r.Name()
	p.checkKeys(n, ruleKeys, g.Name, name)
	switch {
	case r.Alert != "" && r.Record != "":
		p.add(p.errAt(n, g.Name, name, "a rule is either alert: or record:, not both"))
	case r.Alert == "" && r.Record == "":
		p.add(p.errAt(n, g.Name, "", "a rule needs alert: NAME (alerting) or record: NAME (recording)"))
		return nil
	case r.Record != "" && !model.LegacyValidation.IsValidMetricName(r.Record):
		p.add(p.errAt(n, g.Name, name, "record: %q is not a valid metric name (letters, digits, _ and :)", r.Record))
	case r.Alert != "" && !model.LabelValue(r.Alert).IsValid():
		p.add(p.errAt(n, g.Name, name, "alert: %q is not a valid name", r.Alert))
	}
	var exprNode *yaml.Node
	r.ExprText, exprNode = str("expr")
	if exprNode == nil {
		p.add(p.errAt(n, g.Name, name, "expr: is missing; write e.g. expr: p95(latency_ms[5m]) > 5000"))
	} else if strings.TrimSpace(r.ExprText) == "" && exprNode.Kind == yaml.ScalarNode {
		p.add(p.errAt(exprNode, g.Name, name, "expr: is empty; write e.g. expr: p95(latency_ms[5m]) > 5000"))
	}
	if v := mapValue(n, "for"); v != nil {
		r.For = p.duration(v, g.Name, name, "for")
		interval := g.Interval
		if interval <= 0 {
			interval = time.Minute // the default evaluation interval
		}
		if r.For > 0 && r.For < interval {
			r.Warnings = append(r.Warnings, p.errAt(v, g.Name, name,
				"for %s is shorter than the group's interval %s: an alert is only judged at evaluations, so it fires at the first one after it turns pending, %s later; write for: %s or longer, or leave for out",
				model.Duration(r.For), model.Duration(interval), model.Duration(interval), model.Duration(interval)))
		}
	}
	if v := mapValue(n, "keep_firing_for"); v != nil {
		r.KeepFiringFor = p.duration(v, g.Name, name, "keep_firing_for")
	}
	if v := mapValue(n, "labels"); v != nil {
		r.Labels = p.labelMap(v, g.Name, name, "labels", r.Alert != "")
	}
	if v := mapValue(n, "annotations"); v != nil {
		if r.Record != "" {
			p.add(p.errAt(v, g.Name, name, "recording rules have no annotations"))
		}
		r.Annotations = p.labelMap(v, g.Name, name, "annotations", true)
	}
	if r.Record != "" {
		for _, k := range []string{"for", "keep_firing_for", "severity", "priority", "cooldown", "max_alerts_per_day", "notify", "no_data_state", "error_state", "evidence"} {
			if v := mapValue(n, k); v != nil {
				p.add(p.errAt(v, g.Name, name, "%s applies to alerting rules only", k))
			}
		}
	}
	sev, sevNode := str("severity")
	prio, prioNode := str("priority")
	switch {
	case sevNode != nil && prioNode != nil:
		p.add(p.errAt(prioNode, g.Name, name, "give severity or priority, not both"))
	case sevNode != nil:
		r.Severity = Severity(sev)
		if !r.Severity.Valid() {
			p.add(p.errAt(sevNode, g.Name, name, "severity %q: write one of %s", sev, severityChoices()))
		}
	case prioNode != nil:
		s, ok := SeverityOfPriority(prio)
		if !ok {
			p.add(p.errAt(prioNode, g.Name, name, "priority %q: write one of low, medium, high, critical", prio))
		}
		r.Severity = s
	}
	if r.Severity != "" && r.Labels["severity"] != "" && r.Labels["severity"] != string(r.Severity) {
		p.add(p.errAt(n, g.Name, name, "severity %q conflicts with labels.severity %q; keep one", r.Severity, r.Labels["severity"]))
	}
	if v := mapValue(n, "cooldown"); v != nil {
		r.Cooldown = p.duration(v, g.Name, name, "cooldown")
	}
	if v := mapValue(n, "max_alerts_per_day"); v != nil {
		if err := v.Decode(&r.MaxAlertsPerDay); err != nil || r.MaxAlertsPerDay < 0 {
			p.add(p.errAt(v, g.Name, name, "max_alerts_per_day must be a non-negative integer (0 = no limit)"))
		}
	}
	if v := mapValue(n, "notify"); v != nil {
		if err := v.Decode(&r.Notify); err != nil {
			p.add(p.errAt(v, g.Name, name, "notify must be a list of channel names, e.g. [ops-wecom]"))
		}
		for _, c := range r.Notify {
			if p.opts.Channels != nil && !slices.Contains(p.opts.Channels, c) {
				p.add(p.errAt(v, g.Name, name, "notify: no channel named %q; configured channels: %s", c, strings.Join(p.opts.Channels, ", ")))
			}
		}
	}
	for _, sp := range []struct {
		key string
		dst *StatePolicy
	}{{"no_data_state", &r.NoDataState}, {"error_state", &r.ErrorState}} {
		if s, v := str(sp.key); v != nil {
			switch StatePolicy(s) {
			case KeepLast, OK, Alerting:
				*sp.dst = StatePolicy(s)
			default:
				p.add(p.errAt(v, g.Name, name, "%s %q: write keep_last, ok or alerting", sp.key, s))
			}
		}
	}
	if v := mapValue(n, "evidence"); v != nil && r.Alert != "" {
		r.Evidence = p.evidence(v, g.Name, name)
	}
	if v := mapValue(n, "debug"); v != nil {
		if err := v.Decode(&r.Debug); err != nil {
			p.add(p.errAt(v, g.Name, name, "debug must be true or false"))
		}
	}
	if exprNode != nil && r.ExprText != "" {
		e, err := dsl.Parse(r.ExprText, dsl.Options{Schema: p.opts.Schema, Series: p.recordedBefore(g), Limits: p.opts.Limits})
		if err != nil {
			p.add(p.exprErr(exprNode, g.Name, name, err))
		} else if e.Type != "vector" && r.Alert != "" {
			p.add(p.errAt(exprNode, g.Name, name, "an alerting rule's expr must give a vector; compare it, e.g. %s > 5000", r.ExprText))
		} else {
			r.Expr = e
			for _, f := range e.Findings {
				r.Warnings = append(r.Warnings, p.exprErr(exprNode, g.Name, name, f))
			}
			r.Warnings = append(r.Warnings, p.templateLabels(n, g.Name, name, e)...)
			r.Warnings = append(r.Warnings, p.windows(exprNode, g, name, e)...)
		}
	}
	if r.Alert != "" {
		p.quality(n, g, r)
	} else {
		for _, k := range []string{"thresholds", "recover_below", "recover_above", "min_events", "new_group_grace", "repeat_interval", "no_data_window"} {
			if v := mapValue(n, k); v != nil {
				p.add(p.errAt(v, g.Name, name, "%s applies to alerting rules only", k))
			}
		}
	}
	return r
}

// monthsOnBuckets reports whether every month of 2020 to 2039 starts on a
// bucket edge in loc (a zone's offsets from UTC, and so its midnights,
// change with its rules, not with the month).
func monthsOnBuckets(loc *time.Location, b time.Duration) bool {
	for y := 2020; y < 2040; y++ {
		for m := time.January; m <= time.December; m++ {
			if start := dsl.MonthStart(time.Date(y, m, 2, 0, 0, 0, 0, time.UTC), loc); start.Unix()%int64(b/time.Second) != 0 {
				return false
			}
		}
	}
	return true
}

// windows warns about range functions the incremental path cannot slide:
// a window or offset that is not a whole number of buckets (computed in full
// at every evaluation), or a window no longer than the late window (every
// bucket of it is still open, so all of it is read again each time).
func (p *fileParser) windows(exprNode *yaml.Node, g *GroupSpec, rule string, e *dsl.Expr) []error {
	b, late := p.opts.Bucket, p.opts.LateWindow
	if b <= 0 {
		return nil
	}
	var out []error
	for _, l := range e.Leaves {
		text := e.Input[l.Pos.Start:l.Pos.End]
		at := &dsl.Error{Msg: ""}
		at.Line, at.Col = dsl.LineCol(e.Input, int(l.Pos.Start))
		switch {
		case l.Sub != nil:
		case l.Range%b != 0 || l.Offset%b != 0:
			at.Msg = fmt.Sprintf("%s: the window or offset is not a whole number of clickhouse.incremental.bucket (%s), so it is read in full at every evaluation", text, model.Duration(b))
			at.Hint = "write windows and offsets in whole buckets, e.g. [5m] offset 1h"
		case late > 0 && l.Range <= late:
			at.Msg = fmt.Sprintf("%s: the window is no longer than clickhouse.incremental.late_window (%s), so all of it is read again at every evaluation", text, model.Duration(late))
			at.Hint = "widen the window, or shorten late_window if your gateway writes rows promptly"
		case l.Calendar != nil && !monthsOnBuckets(l.Calendar, b):
			at.Msg = fmt.Sprintf("%s: months in %s do not start on a whole number of clickhouse.incremental.bucket (%s), so the month is read in full at every evaluation", text, l.Calendar, model.Duration(b))
			at.Hint = "use a bucket that divides the zone's offsets from UTC, e.g. 15m or 1m"
		}
		if at.Msg != "" {
			out = append(out, p.exprErr(exprNode, g.Name, rule, at))
		}
	}
	return out
}

// templateLabelRef finds the labels a template reads: $labels.NAME,
// .Labels.NAME and index $labels "NAME".
var templateLabelRef = regexp.MustCompile(`(?:\$labels|\.Labels)\.([A-Za-z_][A-Za-z0-9_]*)|index\s+(?:\$labels|\.Labels)\s+"([A-Za-z_][A-Za-z0-9_]*)"`)

// templateLabels warns about templates of an alerting rule's annotations
// and labels that read a label of the events its expression's result
// cannot carry: it always reads an empty string there.
func (p *fileParser) templateLabels(n *yaml.Node, group, rule string, e *dsl.Expr) []error {
	if !e.ResultKnown || mapValue(n, "alert") == nil {
		return nil
	}
	var out []error
	for _, key := range []string{"annotations", "labels"} {
		v := mapValue(n, key)
		if v == nil || v.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			for _, m := range templateLabelRef.FindAllStringSubmatch(val.Value, -1) {
				lbl := m[1] + m[2]
				if !p.opts.Schema.IsLabel(lbl) || slices.Contains(e.ResultLabels, lbl) {
					continue
				}
				have := "no labels"
				if len(e.ResultLabels) > 0 {
					have = "only " + strings.Join(e.ResultLabels, ", ")
				}
				out = append(out, p.errAt(val, group, rule, "%s.%s reads the label %s, but the expression's result carries %s: it is always empty; group by %s too (e.g. max by (%s) (...)) or leave it out of the template",
					key, k.Value, lbl, have, lbl, strings.Join(append(slices.Clone(e.ResultLabels), lbl), ", ")))
			}
		}
	}
	return out
}

// recordedBefore lets a rule read the outputs of the recording rules listed
// before it in its group, evaluated at the same timestamp.
func (p *fileParser) recordedBefore(g *GroupSpec) func(string) bool {
	names := map[string]bool{}
	for _, r := range g.Rules {
		if r.Record != "" {
			names[r.Record] = true
		}
	}
	return func(name string) bool { return names[name] }
}

// exprErr maps a position inside the expression to a position in the file.
func (p *fileParser) exprErr(n *yaml.Node, group, rule string, err error) error {
	var de *dsl.Error
	if !errors.As(err, &de) {
		return p.errAt(n, group, rule, "expr: %v", err)
	}
	pos := p.valuePos(n, runeOffset(n.Value, de.Line, de.Col))
	msg := de.Msg
	if de.Hint != "" {
		msg += "; " + de.Hint
	}
	return &FileError{Pos: pos, Group: group, Rule: rule, Err: errors.New("expr: " + msg)}
}

// runeOffset converts a 1-based line and rune column in s into a rune offset.
func runeOffset(s string, line, col int) int {
	off := 0
	for i, l := range strings.SplitAfter(s, "\n") {
		if i == line-1 {
			return off + col - 1
		}
		off += utf8.RuneCountInString(l)
	}
	return off
}

// srcLine returns line (1-based) of the file as runes, without its line
// ending; nil past the end.
func (p *fileParser) srcLine(line int) []rune {
	if line < 1 || line > len(p.lines) {
		return nil
	}
	return []rune(strings.TrimSuffix(p.lines[line-1], "\r"))
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' }

func blankLine(l []rune) bool {
	for _, r := range l {
		if !isBlank(r) {
			return false
		}
	}
	return true
}

func leadingBlanks(l []rune) int {
	i := 0
	for i < len(l) && isBlank(l[i]) {
		i++
	}
	return i
}

// valuePos maps a rune offset in the value of scalar n to its position in
// the file, undoing what YAML did to the source: escapes and doubled quotes
// in quoted scalars, line folding in flow scalars, indentation and folding
// in block scalars.
func (p *fileParser) valuePos(n *yaml.Node, off int) Position {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return p.blockPos(n, off)
	}
	double, single := n.Style&yaml.DoubleQuotedStyle != 0, n.Style&yaml.SingleQuotedStyle != 0
	line, src := n.Line, p.srcLine(n.Line)
	i := n.Column - 1
	if double || single {
		i++ // the opening quote
	}
	// nextLine folds a line break: the following blank lines become one
	// newline each, or the break becomes one space; leading blanks go.
	nextLine := func(escaped bool) {
		blanks := 0
		for line++; line <= len(p.lines) && blankLine(p.srcLine(line)); line++ {
			blanks++
		}
		src = p.srcLine(line)
		i = leadingBlanks(src)
		switch {
		case escaped:
		case blanks > 0:
			off -= blanks
		default:
			off-- // the space
		}
	}
	for off > 0 && line <= len(p.lines) {
		if i >= len(src) {
			nextLine(false)
			continue
		}
		switch c := src[i]; {
		case double && c == '\\':
			if i+1 >= len(src) {
				nextLine(true) // an escaped line break adds nothing
				continue
			}
			switch src[i+1] {
			case 'x':
				i += 4
			case 'u':
				i += 6
			case 'U':
				i += 10
			default:
				i += 2
			}
			off--
		case single && c == '\'' && i+1 < len(src) && src[i+1] == '\'':
			i += 2
			off--
		case isBlank(c) && blankLine(src[i:]):
			i = len(src) // blanks before a line break are not in the value
		default:
			i++
			off--
		}
	}
	return Position{File: p.file, Line: line, Col: i + 1}
}

// blockPos maps a rune offset in the value of a literal (|) or folded (>)
// block scalar to its position in the file. The content starts on the line
// after the header, indented as its first non-blank line.
func (p *fileParser) blockPos(n *yaml.Node, off int) Position {
	first := n.Line + 1
	indent := 0
	for l := first; l <= len(p.lines); l++ {
		if src := p.srcLine(l); !blankLine(src) {
			indent = leadingBlanks(src)
			break
		}
	}
	content := func(l int) []rune {
		src := p.srcLine(l)
		if len(src) <= indent {
			return nil
		}
		return src[indent:]
	}
	folded := n.Style&yaml.FoldedStyle != 0
	line := first
	for line <= len(p.lines) {
		c := content(line)
		if off <= len(c) {
			break
		}
		off -= len(c)
		// The line break, and the blank lines after it.
		blanks := 0
		next := line + 1
		for next <= len(p.lines) && blankLine(p.srcLine(next)) {
			blanks++
			next++
		}
		nc := content(next)
		moreIndented := func(r []rune) bool { return len(r) > 0 && isBlank(r[0]) }
		if folded && !moreIndented(c) && !moreIndented(nc) {
			off -= max(blanks, 1) // a single break folds into a space; blank lines stay newlines
		} else {
			off -= blanks + 1
		}
		if off < 0 {
			off = 0
		}
		line = next
	}
	return Position{File: p.file, Line: line, Col: indent + off + 1}
}

func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// ClosestKey returns the allowed key nearest to s (edit distance under 3),
// or "": the "did you mean" of strict YAML decoders.
func ClosestKey(s string, allowed []string) string { return dsl.Closest(s, allowed) }
