package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

// Evidence is what explains an alert, gathered when it starts firing (a
// rule's evidence: key): among the events of the alert's group that the
// rule's first range function reads, in its window, the most frequent
// values of some labels and a few example calls. It is bounded: at most
// rulefmt.MaxEvidenceTop labels of rulefmt.MaxEvidenceLimit values, values
// cut to MaxEvidenceValueBytes, rulefmt.MaxEvidenceExamples request ids cut
// to MaxEvidenceIDBytes.
type Evidence struct {
	// Leaf is the range function whose events were read, as written
	// (count_over_time(events{status="error"}[5m])).
	Leaf string `json:"leaf"`
	// From and To are its window: events with From < time <= To.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Group are the label values of the alert's group the events share.
	Group map[string]string `json:"group,omitempty"`
	// Total counts the events read.
	Total uint64 `json:"total"`
	// Top are the most frequent values of each label asked for, in the
	// order of the rule's evidence.top.
	Top []EvidenceLabel `json:"top,omitempty"`
	// Examples are request ids of example calls, ordered as ExamplesBy says.
	Examples []string `json:"examples,omitempty"`
	// ExamplesBy says which calls the examples are: "latest", or "highest
	// FIELD" (the slowest for latency_ms) when the function reads a field.
	ExamplesBy string `json:"examples_by,omitempty"`
	// Error says why the evidence is missing (the notification went out
	// without it); empty when it was gathered.
	Error string `json:"error,omitempty"`
}

// EvidenceLabel is one label's most frequent values among the events.
type EvidenceLabel struct {
	Label  string          `json:"label"`
	Values []EvidenceValue `json:"values"`
	// Other counts the events whose value is not listed.
	Other uint64 `json:"other,omitempty"`
}

// EvidenceValue is one value of a label, with the events that have it
// and their share of all the events read (0 to 1).
type EvidenceValue struct {
	Value string  `json:"value"`
	Count uint64  `json:"count"`
	Share float64 `json:"share"`
}

// The byte bounds of the values evidence holds; longer ones are cut on a
// character boundary and end with "…".
const (
	MaxEvidenceValueBytes = 256
	MaxEvidenceIDBytes    = 128
)

// DefaultEvidenceTimeout is GroupOptions.EvidenceTimeout's default.
const DefaultEvidenceTimeout = 5 * time.Second

// maxEvidenceAlerts bounds the alerts of one rule whose evidence is
// gathered at one evaluation; the others say why they have none.
const maxEvidenceAlerts = 10

// EvidenceQuery asks a backend for the events of one alert's group.
type EvidenceQuery struct {
	// Leaf gives the selector (matchers and field) of the events read.
	Leaf *dsl.Leaf
	// From and To are the window: From < time <= To, in whole seconds
	// (the backend floors them, as for a leaf).
	From, To time.Time
	// Group are label = value conditions the events must meet too.
	Group map[string]string
	// Top are the labels whose Limit most frequent values are wanted:
	// by count descending, then value ascending (bytewise).
	Top   []string
	Limit int
	// Examples is how many request ids (the schema's RequestID column)
	// are wanted, of events with a non-empty one: the highest values of
	// the leaf's field first when it reads one (else the latest), then
	// the latest (by whole second), then by request id ascending.
	Examples int
}

// EvidenceSource gathers evidence. The ClickHouse querier and the memory
// evaluator implement it and must give identical answers: Total, each
// label's values with their counts (Share and Other are left to the
// engine), and the request ids. Values and request ids may come back cut
// to at least MaxEvidenceValueBytes+1 and MaxEvidenceIDBytes+1 bytes.
type EvidenceSource interface {
	Evidence(ctx context.Context, q EvidenceQuery) (Evidence, error)
}

// FinishEvidence completes what a backend returned for q: shares, the
// events of values not listed, values and ids cut to their bounds, and
// the leaf, window, group and example order.
func FinishEvidence(e *dsl.Expr, q EvidenceQuery, ev Evidence) Evidence {
	if start, end := int(q.Leaf.Pos.Start), int(q.Leaf.Pos.End); start >= 0 && start <= end && end <= len(e.Input) {
		ev.Leaf = e.Input[start:end]
	}
	ev.From, ev.To = time.Unix(q.From.Unix(), 0).UTC(), time.Unix(q.To.Unix(), 0).UTC()
	ev.Group = q.Group
	for i := range ev.Top {
		var listed uint64
		for j := range ev.Top[i].Values {
			v := &ev.Top[i].Values[j]
			v.Value = clipUTF8(v.Value, MaxEvidenceValueBytes)
			if ev.Total > 0 {
				v.Share = float64(v.Count) / float64(ev.Total)
			}
			listed += v.Count
		}
		if ev.Total > listed {
			ev.Top[i].Other = ev.Total - listed
		}
	}
	for i, id := range ev.Examples {
		ev.Examples[i] = clipUTF8(id, MaxEvidenceIDBytes)
	}
	if q.Examples > 0 {
		ev.ExamplesBy = examplesBy(q.Leaf)
	}
	return ev
}

// examplesBy is Evidence.ExamplesBy for leaf l.
func examplesBy(l *dsl.Leaf) string {
	if l.Selector.Field == dsl.EventsSelector || len(l.Selector.Columns) == 0 {
		return "latest"
	}
	return "highest " + l.Selector.Field
}

// clipUTF8 cuts s to at most limit bytes on a character boundary, ending
// with "…" when it was cut, and makes it valid UTF-8. It gives the same
// result for s and for any prefix of s longer than limit bytes, so a
// backend may return values cut to limit+1 bytes.
func clipUTF8(s string, limit int) string {
	if len(s) <= limit {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	const marker = "…"
	cut := limit - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "\uFFFD") + marker
}

// evidenceLeaf is the range function whose events explain an alert of e:
// its first one (the numerator of a ratio), nil when it has none.
func evidenceLeaf(e *dsl.Expr) *dsl.Leaf {
	if e == nil || len(e.Leaves) == 0 {
		return nil
	}
	return e.Leaves[0]
}

// evidenceQuery is the query of the evidence of an alert whose query
// result had labels sample, at ts.
func evidenceQuery(spec *rulefmt.Evidence, e *dsl.Expr, l *dsl.Leaf, sample labels.Labels, ts time.Time) EvidenceQuery {
	from, to := l.Window(ts)
	if s := l.Sub; s != nil {
		// A leaf in a subquery is read at every step of the subquery's range.
		to = to.Add(-s.Offset)
		from = to.Add(-s.Range - l.Range)
	}
	group := map[string]string{}
	if l.Grouped {
		for _, name := range l.By {
			switch v := sample.Get(name); {
			case v != "":
				group[name] = v
			case e.ResultKnown && slices.Contains(e.ResultLabels, name):
				group[name] = "" // the group of events without the label
			}
		}
	}
	return EvidenceQuery{Leaf: l, From: from, To: to, Group: group, Top: spec.Top, Limit: spec.Limit, Examples: spec.Examples}
}

// gatherEvidence gathers the evidence of the alerts that started firing
// in trans (a live evaluation of a rule with evidence:) and attaches it to
// the transitions (for the audit trail) and to the alerts (for their
// notifications). All of it shares one deadline, env.evidenceTimeout: an
// alert whose evidence is not ready by then is sent without it and says
// why.
func (r *AlertingRule) gatherEvidence(ctx context.Context, env evalEnv, trans []Transition) {
	spec := r.spec.Evidence
	leaf := evidenceLeaf(r.spec.Expr)
	if spec == nil || leaf == nil || env.evidence == nil || !env.notify {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, env.evidenceTimeout)
	defer cancel()
	gathered := 0
	for i := range trans {
		t := &trans[i]
		if t.To != "firing" || t.alert.Suppressed != "" || t.alert.sample.Get(ReasonLabel) != "" {
			continue
		}
		var ev Evidence
		if gathered >= maxEvidenceAlerts {
			ev.Error = fmt.Sprintf("not gathered: more than %d alerts of the rule started firing at once", maxEvidenceAlerts)
		} else {
			gathered++
			q := evidenceQuery(spec, r.spec.Expr, leaf, t.alert.sample, env.queryTS)
			got, err := env.evidence.Evidence(ctx, q)
			switch {
			case err == nil:
				ev = FinishEvidence(r.spec.Expr, q, got)
			case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
				ev.Error = "not gathered: the query took longer than " + model.Duration(env.evidenceTimeout).String()
			default:
				// The backend's error stays in the log: it may hold details
				// that are no business of a chat room.
				ev.Error = "not gathered: the query failed (see callwatch's log)"
				env.logger.Warn("gathering evidence failed", "rule", r.Name(), "labels", t.alert.Labels, "err", err)
			}
		}
		t.alert.Evidence = &ev
		r.mu.Lock()
		if a := r.active[r.identity(t.alert.Labels)]; a != nil && a.FiredAt.Equal(t.alert.FiredAt) {
			a.Evidence = &ev
		}
		r.mu.Unlock()
	}
}

// SortEvidenceValues orders values as EvidenceQuery says: by count
// descending, then value ascending; for backends that count in Go.
func SortEvidenceValues(vs []EvidenceValue) {
	sort.Slice(vs, func(i, j int) bool {
		if vs[i].Count != vs[j].Count {
			return vs[i].Count > vs[j].Count
		}
		return vs[i].Value < vs[j].Value
	})
}
