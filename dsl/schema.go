package dsl

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// EventsSelector is the pseudo-selector that selects events without a value,
// for counting: count_over_time(events{status="error"}[5m]).
const EventsSelector = "events"

// Schema maps the columns of the events table to the language: one time
// column, label columns usable in matchers and by (...), and numeric fields
// usable as selectors. A field is the sum of one or more columns.
type Schema struct {
	// Time is the DateTime column holding the event's time.
	Time string
	// Labels are the string columns usable in matchers and groupings.
	Labels []string
	// Fields maps a selector name to the numeric columns whose sum it is.
	Fields map[string]Columns
	// RequestID is the string column holding a call's request id, read
	// only to show example calls in notifications (a rule's
	// evidence.examples); "" when the table has none.
	RequestID string
	// Units maps a field to the unit of its values (ms, tokens, ¥), which
	// the status page writes after them; a field without one has none.
	Units map[string]string
}

// Columns are the columns whose sum is a field's value.
type Columns []string

// DefaultSchema is the baseline service's events table (ai_call_events).
func DefaultSchema() Schema {
	return Schema{
		Time:   "created_at",
		Labels: []string{"tenant_id", "app_code", "model", "provider", "status", "error_code"},
		Fields: map[string]Columns{
			"latency_ms":    {"latency_ms"},
			"input_tokens":  {"input_tokens"},
			"output_tokens": {"output_tokens"},
			"total_tokens":  {"input_tokens", "output_tokens"},
			"cost":          {"cost"},
		},
		Units: map[string]string{"latency_ms": "ms", "input_tokens": "tokens", "output_tokens": "tokens", "total_tokens": "tokens", "cost": "¥"},
	}
}

// Validate checks that every name is a plain identifier (they are written
// into SQL as identifiers) and that names do not collide.
func (s Schema) Validate() error {
	if err := checkIdent("schema.time", s.Time); err != nil {
		return err
	}
	seen := map[string]string{s.Time: "the time column"}
	if len(s.Labels) == 0 {
		return fmt.Errorf("schema.labels: list at least one label column")
	}
	for _, l := range s.Labels {
		if err := checkIdent("schema.labels", l); err != nil {
			return err
		}
		if what, dup := seen[l]; dup {
			return fmt.Errorf("schema.labels: %q is already %s", l, what)
		}
		seen[l] = "a label"
	}
	if len(s.Fields) == 0 {
		return fmt.Errorf("schema.fields: map at least one field to a column, e.g. latency_ms: latency_ms")
	}
	for _, name := range s.FieldNames() {
		if err := checkIdent("schema.fields", name); err != nil {
			return err
		}
		if name == EventsSelector {
			return fmt.Errorf("schema.fields: %q is reserved for counting events; rename the field", name)
		}
		if what, dup := seen[name]; dup && what != "a column" {
			return fmt.Errorf("schema.fields: %q is already %s", name, what)
		}
		cols := s.Fields[name]
		if len(cols) == 0 {
			return fmt.Errorf("schema.fields.%s: name the column(s) it adds up", name)
		}
		for _, c := range cols {
			if err := checkIdent("schema.fields."+name, c); err != nil {
				return err
			}
			if seen[c] == "a label" || c == s.Time {
				return fmt.Errorf("schema.fields.%s: column %q is not numeric (it is %s)", name, c, seen[c])
			}
		}
	}
	if s.RequestID != "" {
		if err := checkIdent("schema.request_id", s.RequestID); err != nil {
			return err
		}
		if what, dup := seen[s.RequestID]; dup {
			return fmt.Errorf("schema.request_id: %q is already %s; name the column holding each call's request id", s.RequestID, what)
		}
		for _, c := range s.NumericColumns() {
			if c == s.RequestID {
				return fmt.Errorf("schema.request_id: %q is a numeric field's column; name the column holding each call's request id", c)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Units)) {
		if s.Fields[name] == nil {
			msg := fmt.Sprintf("schema.units: %q is not a field; give units to fields (%s)", name, strings.Join(s.FieldNames(), ", "))
			if c := Closest(name, s.FieldNames()); c != "" {
				msg += fmt.Sprintf("; did you mean %q?", c)
			}
			return errors.New(msg)
		}
	}
	return nil
}

// FieldNames returns the field names, sorted.
func (s Schema) FieldNames() []string {
	names := make([]string, 0, len(s.Fields))
	for n := range s.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NumericColumns returns every column used by a field, sorted, without duplicates.
func (s Schema) NumericColumns() []string {
	var cols []string
	for _, c := range s.Fields {
		cols = append(cols, c...)
	}
	sort.Strings(cols)
	return slices.Compact(cols)
}

// IsLabel reports whether name is a mapped label column.
func (s Schema) IsLabel(name string) bool { return slices.Contains(s.Labels, name) }

func checkIdent(where, name string) error {
	if name == "" {
		return fmt.Errorf("%s: empty name", where)
	}
	for i, r := range name {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("%s: %q is not a plain column name (letters, digits and _ only, not starting with a digit)", where, name)
		}
	}
	if strings.HasPrefix(name, "__") {
		return fmt.Errorf("%s: %q: names starting with __ are reserved", where, name)
	}
	return nil
}

// Closest returns the name of allowed nearest to s, when a misspelling
// (at most two edits) away or the only name s begins (tenant for
// tenant_id), or "": the "did you mean" of error messages.
func Closest(s string, allowed []string) string {
	best, bestD := "", 3
	var prefixed []string
	for _, a := range allowed {
		if d := editDistance(s, a); d < bestD {
			best, bestD = a, d
		}
		if len(s) >= 3 && strings.HasPrefix(a, s) {
			prefixed = append(prefixed, a)
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
