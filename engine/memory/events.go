package memory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/callwatch/callwatch/dsl"
)

// Event is one call event: its time, its label values (in the order of the
// schema's labels) and its numeric columns.
type Event struct {
	Time   time.Time
	Labels []string
	Nums   map[string]float64
	// RequestID is the call's request id (the schema's RequestID column),
	// "" when it has none or the schema maps none.
	RequestID string
}

// ReadJSONL reads events in JSON Lines: one object per line, keys are column
// names, the time column is RFC 3339 or unix seconds. Keys that are not
// mapped columns are ignored (exports of real tables carry ids and such);
// missing labels are empty and missing numbers are 0, as in a ClickHouse
// column with defaults.
func ReadJSONL(r io.Reader, schema dsl.Schema) ([]Event, error) {
	numeric := map[string]bool{}
	for _, c := range schema.NumericColumns() {
		numeric[c] = true
	}
	labelIdx := map[string]int{}
	for i, l := range schema.Labels {
		labelIdx[l] = i
	}
	var events []Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		ev := Event{Labels: make([]string, len(schema.Labels)), Nums: map[string]float64{}}
		tv, ok := obj[schema.Time]
		if !ok {
			return nil, fmt.Errorf("line %d: missing time column %q", line, schema.Time)
		}
		ts, err := dsl.ParseTime(unquote(tv))
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", line, schema.Time, err)
		}
		ev.Time = ts
		// By name, so a line with several bad columns names the same one
		// at every read.
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			v := obj[k]
			switch {
			case k == schema.Time:
			case k == schema.RequestID && k != "":
				if s := unquote(v); s != "null" {
					ev.RequestID = s
				}
			case numeric[k]:
				s := unquote(v)
				if s == "null" || s == "" {
					continue
				}
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return nil, fmt.Errorf("line %d: column %q: %q is not a number", line, k, s)
				}
				ev.Nums[k] = f
			default:
				if i, ok := labelIdx[k]; ok {
					s := unquote(v)
					if s == "null" {
						s = ""
					}
					ev.Labels[i] = s
				}
			}
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return events, nil
}

// unquote returns the text of a JSON string, or the literal of a number.
func unquote(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(v))
}
