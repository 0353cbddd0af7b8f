package engine

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
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
		text := randomText(r, pieces, 5)
		if checkTemplate(t, text, lsets[r.IntN(len(lsets))], externals[r.IntN(len(externals))], values[r.IntN(len(values))]) {
			simple++
		}
		if t.Failed() {
			t.FailNow()
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

// randomText joins 1 to most pieces drawn from alphabet.
func randomText(r *rand.Rand, alphabet []string, most int) string {
	var sb strings.Builder
	for range 1 + r.IntN(most) {
		sb.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}
