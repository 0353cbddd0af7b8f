package rulefmt

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
)

// Evidence asks for what explains an alert of the rule when it starts
// firing: the most frequent values of some labels among the events of the
// alert's group in the rule's window, and a few example calls (their
// request ids). It is opt-in (the evidence: key) and bounded.
type Evidence struct {
	// Top are the labels whose most frequent values are listed.
	Top []string
	// Limit is how many values of each label are listed.
	Limit int
	// Examples is how many example request ids are listed (0: none); it
	// needs the schema's request_id column.
	Examples int
}

// The bounds of evidence:, and the default of limit.
const (
	DefaultEvidenceLimit = 5
	MaxEvidenceLimit     = 20
	MaxEvidenceTop       = 5
	MaxEvidenceExamples  = 10
)

var evidenceKeys = []string{"top", "limit", "examples"}

// evidence parses the evidence: key of an alerting rule.
func (p *fileParser) evidence(v *yaml.Node, group, rule string) *Evidence {
	if v.Kind != yaml.MappingNode {
		p.add(p.errAt(v, group, rule, "evidence must be a mapping, e.g. evidence: {top: [error_code, model], limit: 5}"))
		return nil
	}
	p.checkKeys(v, evidenceKeys, group, rule)
	ev := &Evidence{Limit: DefaultEvidenceLimit}
	ok := true
	if t := mapValue(v, "top"); t != nil {
		ok = p.evidenceTop(t, group, rule, ev) && ok
	}
	for _, k := range []struct {
		key      string
		dst      *int
		min, max int
	}{{"limit", &ev.Limit, 1, MaxEvidenceLimit}, {"examples", &ev.Examples, 0, MaxEvidenceExamples}} {
		n := mapValue(v, k.key)
		if n == nil {
			continue
		}
		if err := n.Decode(k.dst); err != nil || n.Kind != yaml.ScalarNode || *k.dst < k.min || *k.dst > k.max {
			p.add(p.errAt(n, group, rule, "evidence.%s must be an integer from %d to %d", k.key, k.min, k.max))
			ok = false
		}
	}
	if n := mapValue(v, "examples"); n != nil && ev.Examples > 0 && p.opts.Schema.RequestID == "" {
		p.add(p.errAt(n, group, rule, "evidence.examples needs the column holding each call's request id: set schema.request_id in the configuration (e.g. request_id: request_id), or leave examples out"))
		ok = false
	}
	if ok && len(ev.Top) == 0 && ev.Examples == 0 {
		p.add(p.errAt(v, group, rule, "evidence asks for nothing: list labels in top (e.g. top: [error_code, model]) or set examples"))
		ok = false
	}
	if !ok {
		return nil
	}
	return ev
}

// evidenceTop parses evidence.top: a list of mapped labels, without
// repeats.
func (p *fileParser) evidenceTop(t *yaml.Node, group, rule string, ev *Evidence) bool {
	items := []*yaml.Node{t}
	switch t.Kind {
	case yaml.SequenceNode:
		items = t.Content
	case yaml.ScalarNode:
	default:
		p.add(p.errAt(t, group, rule, "evidence.top must be a list of labels, e.g. [error_code, model]"))
		return false
	}
	if len(items) > MaxEvidenceTop {
		p.add(p.errAt(t, group, rule, "evidence.top lists %d labels; list at most %d", len(items), MaxEvidenceTop))
		return false
	}
	ok := true
	for _, it := range items {
		switch {
		case it.Kind != yaml.ScalarNode:
			p.add(p.errAt(it, group, rule, "evidence.top must be a list of labels, e.g. [error_code, model]"))
			ok = false
		case !p.opts.Schema.IsLabel(it.Value):
			hint := "the labels are " + strings.Join(p.opts.Schema.Labels, ", ")
			if s := dsl.Closest(it.Value, p.opts.Schema.Labels); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			p.add(p.errAt(it, group, rule, "evidence.top: %q is not a label of the schema; %s", it.Value, hint))
			ok = false
		case slices.Contains(ev.Top, it.Value):
			p.add(p.errAt(it, group, rule, "evidence.top lists %q twice", it.Value))
			ok = false
		default:
			ev.Top = append(ev.Top, it.Value)
		}
	}
	return ok
}
