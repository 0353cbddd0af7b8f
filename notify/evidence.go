package notify

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/callwatch/callwatch/engine"
)

// EvidenceData is an alert's evidence (engine.Evidence) as templates see
// it, cut to fit a chat message: values and request ids to
// evidenceChatBytes each, and all of it to about evidenceBudget bytes
// (Cut says values were left out).
type EvidenceData struct {
	// Leaf is the range function whose events were read; Window its width
	// ("5m"); Total the events read.
	Leaf, Window, Total string
	// Group lists the label values of the alert's group, "tenant_id=acme".
	Group string
	Top   []EvidenceLabelData
	// Examples are request ids; ExamplesBy says which calls they are, in
	// the channel's language ("latest", "highest latency_ms").
	Examples   []string
	ExamplesBy string
	// Error says why there is no evidence (the query timed out or failed).
	Error string
	Cut   bool
}

// EvidenceLabelData is one label's most frequent values.
type EvidenceLabelData struct {
	Label  string
	Values []EvidenceValueData
	// Other counts the events with other values, "" when none.
	Other string
}

// EvidenceValueData is one value: the value ("" shows as `""`), its
// events and their share ("66%").
type EvidenceValueData struct {
	Value, Count, Share string
}

// The chat bounds of evidence: per value or request id, and in all.
const (
	evidenceChatBytes = 64
	evidenceBudget    = 1024
)

// evidenceData is ev for templates, in t's language; nil for nil. The
// budget counts the values as escaped for t's format.
func (t *Templates) evidenceData(ev *engine.Evidence) *EvidenceData {
	if ev == nil {
		return nil
	}
	w := words[t.lang]
	d := &EvidenceData{Error: ev.Error}
	if ev.Error != "" {
		return d
	}
	d.Leaf = clipUTF8(ev.Leaf, 2*evidenceChatBytes)
	d.Window = model.Duration(ev.To.Sub(ev.From)).String()
	d.Total = strconv.FormatUint(ev.Total, 10)
	d.Group = clipUTF8(groupText(ev.Group), 2*evidenceChatBytes)
	used := len(t.esc(d.Leaf)) + len(t.esc(d.Group))
	for _, l := range ev.Top {
		ld := EvidenceLabelData{Label: l.Label}
		other := l.Other
		for _, v := range l.Values {
			vd := EvidenceValueData{Value: clipUTF8(v.Value, evidenceChatBytes), Count: strconv.FormatUint(v.Count, 10), Share: sharePercent(v.Share)}
			if v.Value == "" {
				vd.Value = `""`
			}
			if used += len(t.esc(vd.Value)) + 16; used > evidenceBudget {
				d.Cut = true
				other += v.Count
				continue
			}
			ld.Values = append(ld.Values, vd)
		}
		if other > 0 {
			ld.Other = strconv.FormatUint(other, 10)
		}
		d.Top = append(d.Top, ld)
	}
	for _, id := range ev.Examples {
		id = clipUTF8(id, evidenceChatBytes)
		if used += len(t.esc(id)) + 2; used > evidenceBudget {
			d.Cut = true
			break
		}
		d.Examples = append(d.Examples, id)
	}
	switch by, field := ev.ExamplesBy, strings.TrimPrefix(ev.ExamplesBy, "highest "); {
	case by == "latest":
		d.ExamplesBy = w.latest
	case field != by:
		d.ExamplesBy = fmt.Sprintf(w.highest, field)
	}
	return d
}

// groupText writes a group's labels as name=value, sorted by name.
func groupText(g map[string]string) string {
	parts := make([]string, 0, len(g))
	for _, k := range sortedKeys(g) {
		parts = append(parts, k+"="+strconv.Quote(g[k]))
	}
	return strings.Join(parts, ", ")
}

// sharePercent writes a share (0 to 1) as a whole percentage; "<1%" for
// a share that rounds to 0.
func sharePercent(s float64) string {
	p := math.Round(s * 100)
	if p == 0 && s > 0 {
		return "<1%"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// clipUTF8 cuts s to at most limit bytes on a character boundary, ending
// with "…" when it was cut.
func clipUTF8(s string, limit int) string { return truncateUTF8(s, limit, "…") }

// escapeEvidence returns d with every value escaped by esc.
func escapeEvidence(d *EvidenceData, esc func(string) string) *EvidenceData {
	if d == nil {
		return nil
	}
	c := *d
	c.Leaf, c.Window, c.Total, c.Group, c.ExamplesBy, c.Error = esc(c.Leaf), esc(c.Window), esc(c.Total), esc(c.Group), esc(c.ExamplesBy), esc(c.Error)
	c.Top = make([]EvidenceLabelData, len(d.Top))
	for i, l := range d.Top {
		l.Label, l.Other = esc(l.Label), esc(l.Other)
		vals := make([]EvidenceValueData, len(l.Values))
		for j, v := range l.Values {
			vals[j] = EvidenceValueData{Value: esc(v.Value), Count: esc(v.Count), Share: esc(v.Share)}
		}
		l.Values = vals
		c.Top[i] = l
	}
	c.Examples = make([]string, len(d.Examples))
	for i, id := range d.Examples {
		c.Examples[i] = esc(id)
	}
	return &c
}

// EvidenceText renders an alert's evidence with the built-in "evidence"
// text of t's language and format, "" when the alert has none: the
// Alertmanager annotation, the webhook's GET parameter and legacy field,
// the log's attribute.
func (t *Templates) EvidenceText(a engine.Alert) string {
	d := t.evidenceData(a.Evidence)
	if d == nil {
		return ""
	}
	var buf bytes.Buffer
	if err := t.defFiring.ExecuteTemplate(&buf, "evidence", escapeEvidence(d, t.esc)); err != nil {
		return "" // the built-in text is tested; it does not fail on its own data
	}
	return tidy(buf.String())
}
