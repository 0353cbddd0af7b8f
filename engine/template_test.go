package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"github.com/callwatch/callwatch/rulefmt"
)

// TestSimpleTemplateMatchesPrometheus expands random templates both by
// simpleTemplate and by Prometheus' expander (as alert annotations are):
// wherever simpleTemplate answers, the texts are equal, and it answers the
// usual summaries.
func TestSimpleTemplateMatchesPrometheus(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	pieces := []string{
		"summary ", "is ", "über 5%: ", "{", "}", "}}", "$value", "\n",
		"{{ $value }}", "{{$value}}", "{{  $value  }}", "{{ $labels.tenant_id }}", "{{$labels.app_code}}",
		"{{ $labels.missing }}", "{{ $externalLabels.region }}", "{{ $externalLabels.nope }}", "{{ $labels._x1 }}",
		// Not simple: they must fall back, to the same text.
		"{{ humanize $value }}", "{{- $value }}", "{{ $value -}}", "{{ $value | printf \"%.2f\" }}",
		"{{/* note */}}", "{{ $labels.1x }}", "{{ .Labels.tenant_id }}", "{{ $labels.tenant_id.x }}", "{{ $value",
		"{{\t$value}}", "{{ $labels.é }}", "{{ $labels }}", "{{ if gt $value 1.0 }}high{{ end }}",
	}
	values := []float64{0, math.Copysign(0, -1), 1, 2.5, 1e21, 1e20, 123456789, 1e-7, 0.1 + 0.2, -3, math.NaN(), math.Inf(1), math.Inf(-1), 5e-324}
	lsets := []labels.Labels{
		labels.FromStrings("tenant_id", "acme", "app_code", "a<b>&c", "_x1", "v"),
		labels.FromStrings("tenant_id", "t7"),
		labels.EmptyLabels(),
	}
	externals := []map[string]string{nil, {"region": "eu"}}
	simple := 0
	const cases = 4000
	for range cases {
		var sb strings.Builder
		for range 1 + r.IntN(5) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		text := sb.String()
		value, lset, ext := values[r.IntN(len(values))], lsets[r.IntN(len(lsets))], externals[r.IntN(len(externals))]
		got, ok := simpleTemplate(text, lset, ext, value)
		if !ok {
			continue
		}
		simple++
		data := template.AlertTemplateData(lset.Map(), ext, "", promql.Sample{F: value})
		want, err := template.NewTemplateExpander(context.Background(), rulefmt.TemplateDefs+text, "t", data, model.Time(0), nil, nil, nil).Expand()
		if err != nil {
			t.Fatalf("%q: simpleTemplate gives %q, Prometheus fails: %v", text, got, err)
		}
		if got != want {
			t.Fatalf("%q with %v, %v, %v: simpleTemplate %q, Prometheus %q", text, lset, ext, value, got, want)
		}
	}
	t.Logf("%d of %d templates expanded by simpleTemplate", simple, cases)
	if simple < cases/10 {
		t.Errorf("only %d of %d templates took simpleTemplate", simple, cases)
	}
	for _, text := range []string{`{{ $labels.tenant_id }} at {{ $value }}`, `ErrorCount_t7_1d is {{ $value }} (threshold 20000)`} {
		if _, ok := simpleTemplate(text, lsets[0], nil, 1); !ok {
			t.Errorf("%q: not expanded by simpleTemplate", text)
		}
	}
}
