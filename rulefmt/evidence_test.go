package rulefmt_test

import (
	"reflect"
	"testing"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

func TestEvidenceIsParsed(t *testing.T) {
	const file = `groups:
  - name: g
    rules:
      - alert: burst
        expr: sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 10
        evidence:
          top: [error_code, model]
          examples: 3
      - alert: slow
        expr: p95(latency_ms[5m]) > 5000
        evidence: {top: model, limit: 20}
      - alert: plain
        expr: count_over_time(events[5m]) > 1
`
	schema := dsl.DefaultSchema()
	schema.RequestID = "request_id"
	groups, err := rulefmt.ParseRuleFile("ev.yaml", []byte(file), rulefmt.LoadOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	rules := groups[0].Rules
	for i, want := range []*rulefmt.Evidence{
		{Top: []string{"error_code", "model"}, Limit: rulefmt.DefaultEvidenceLimit, Examples: 3},
		{Top: []string{"model"}, Limit: 20},
		nil,
	} {
		if got := rules[i].Evidence; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: evidence %+v, want %+v", rules[i].Name(), got, want)
		}
	}
}
