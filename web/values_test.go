package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/notify"
)

// valueRules fire with values of several sizes, each summary writing its
// value with the templates' humanize, as rules.d's do.
const valueRules = `groups:
- name: values
  interval: 1m
  rules:
  - alert: TenantTokens
    expr: sum by (tenant_id) (sum_over_time(input_tokens[1d])) > 1000000
    annotations:
      summary: "{{ $labels.tenant_id }} used {{ $value | humanize }} tokens"
  - alert: TenantLatency
    expr: max by (tenant_id) (avg_over_time(latency_ms[5m])) > 3000
    annotations:
      summary: "{{ $labels.tenant_id }}: {{ $value }} ms"
`

func TestPageWritesValuesAsTheNotificationsDo(t *testing.T) {
	base := time.Unix(1764000000, 0).UTC()
	store := memory.New(dsl.Schema{})
	store.Add(
		memory.Event{Time: base, Labels: []string{"acme", "chat", "gpt-4o", "openai", "ok", ""}, Nums: map[string]float64{"input_tokens": 6533230, "latency_ms": 100}},
		memory.Event{Time: base, Labels: []string{"globex", "chat", "gpt-4o", "openai", "ok", ""}, Nums: map[string]float64{"input_tokens": 10, "latency_ms": 3456.789}},
	)
	audit := &memAudit{}
	now := base.Add(30 * time.Second)
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	mgr := loadRules(t, q, audit, valueRules, func() time.Time { return now })
	ctx := context.Background()
	for _, g := range mgr.Groups() {
		g.Eval(ctx, now)
	}
	opts := Options{Rules: mgr, Actions: mgr, History: audit, QueryRange: q.QueryRange, Now: func() time.Time { return now }}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", PageHandler(opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, body := fetch(t, browser(t), srv.URL+"/")
	firing, history := section(body, "firing"), section(body, "history")

	for _, tc := range []struct {
		name, tenant string
		value        float64
		want, unit   string
	}{
		// 6533230 tokens: the summary's humanize says 6.533M, and so
		// does the value column, not 6.53323e+06, with the unit of
		// input_tokens (schema.units).
		{"a count of millions is written with its prefix", "acme", 6533230, "6.533M", " tokens"},
		// A latency keeps its digits, as the baseline's messages wrote it.
		{"a latency keeps its digits", "globex", 3456.789, "3456.789", " ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := notify.FormatValue(tc.value); got != tc.want {
				t.Fatalf("notify.FormatValue(%v) = %q, want %q", tc.value, got, tc.want)
			}
			if !strings.Contains(firing, "<code>"+tc.want+tc.unit+"</code>") {
				t.Errorf("the firing alerts do not show %s's value as <code>%s%s</code>:\n%s", tc.tenant, tc.want, tc.unit, firing)
			}
			if !strings.Contains(history, "value "+tc.want+tc.unit+"</td>") {
				t.Errorf("the audit history does not show %s's value as %q:\n%s", tc.tenant, tc.want+tc.unit, history)
			}
		})
	}
	t.Run("the summary and the value column agree", func(t *testing.T) {
		for _, same := range [][2]string{{"acme used 6.533M tokens", "<code>6.533M tokens</code>"}, {"globex: 3456.789 ms", "<code>3456.789 ms</code>"}} {
			if !strings.Contains(firing, same[0]) || !strings.Contains(firing, same[1]) {
				t.Errorf("the summary %q and the value column %q do not both show:\n%s", same[0], same[1], firing)
			}
		}
	})
	// Each series here has one point, drawn as a dot: its colour once
	// failed the template, and the page ended in the middle of the chart.
	t.Run("a chart of lone points does not end the page", func(t *testing.T) {
		if !strings.Contains(body, `fill="#`) || !strings.Contains(body, "</html>") {
			t.Fatalf("the page ends with …%s", body[max(0, len(body)-300):])
		}
	})
	t.Run("the chart's threshold is written as the value is", func(t *testing.T) {
		_, row, _ := strings.Cut(body, `id="`+engine.RuleAnchor("values", "TenantTokens")+`"`)
		row, _, _ = strings.Cut(row, "</tr>")
		if !strings.Contains(row, "&gt; 1M") {
			t.Errorf("the chart of TenantTokens does not label its threshold \"> 1M\":\n%s", row)
		}
	})
	t.Run("no value is written in exponent notation", func(t *testing.T) {
		for _, raw := range []string{"e+0", "e+1", "e-0"} {
			if strings.Contains(body, raw) {
				i := strings.Index(body, raw)
				t.Errorf("the page writes %q: …%s…", raw, body[max(0, i-60):min(len(body), i+20)])
			}
		}
	})
}

// TestPageFoldsNotificationsUnderTransitions writes an hour of an
// Alertmanager channel's resends (an intent and an answer every 75 s)
// after one firing: the audit history lists the transitions, with the
// notifications folded under the one they followed, instead of a page of
// pending/sent pairs that pushed the firing off the list.
func TestPageFoldsNotificationsUnderTransitions(t *testing.T) {
	f := newPageFixture(t, "")
	base := f.clock().Add(time.Minute)
	fired := engine.AuditRecord{Time: base, Kind: engine.AuditFiring, Fingerprint: "00000000000000aa", Rule: "Burst",
		Labels: map[string]string{"alertname": "Burst", "tenant_id": "initech"}, Value: 6533230}
	recs := []engine.AuditRecord{fired}
	note := func(at time.Time, fp, ch, status string, attempt int) engine.AuditRecord {
		return engine.AuditRecord{Time: at, Kind: engine.AuditNotification, Fingerprint: fp, Rule: "Burst", Channel: ch,
			NotifyStatus: status, NotifyState: "firing", Attempt: attempt, Labels: fired.Labels}
	}
	recs = append(recs, note(base, fired.Fingerprint, "ops-wecom", engine.NotifyPending, 0),
		note(base, fired.Fingerprint, "ops-wecom", engine.NotifyFailed, 1),
		note(base.Add(time.Second), fired.Fingerprint, "ops-wecom", engine.NotifySent, 2))
	const resends = 48
	for i := range resends {
		at := base.Add(time.Duration(i) * 75 * time.Second)
		recs = append(recs, note(at, fired.Fingerprint, "alertmanager", engine.NotifyPending, 0), note(at, fired.Fingerprint, "alertmanager", engine.NotifySent, 1))
	}
	// Resends of an alert whose firing is not among the rows read: they
	// are counted, not listed.
	recs = append(recs, note(base.Add(time.Hour), "00000000000000bb", "alertmanager", engine.NotifySent, 1))
	if err := f.audit.Record(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Hour + 2*time.Minute)
	_, body := fetch(t, browser(t), f.srv.URL+"/")
	history := section(body, "history")

	transitions, err := f.audit.History(context.Background(), engine.AuditQuery{Kinds: transitionKinds})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("each row is a transition, the notifications are not rows", func(t *testing.T) {
		if got := strings.Count(history, `<tr class="audit">`); got != len(transitions) {
			t.Errorf("%d rows, want the %d transitions", got, len(transitions))
		}
		if strings.Contains(history, `<span class="badge notification">`) {
			t.Error("a notification is listed as a row of its own")
		}
	})
	var row string
	for _, r := range strings.Split(history, `<tr class="audit">`) {
		if strings.Contains(r, `<b>Burst</b>`) {
			row, _, _ = strings.Cut(r, "</tr>")
		}
	}
	t.Run("the firing's notifications are folded under it, summed up by channel", func(t *testing.T) {
		want := fmt.Sprintf("<summary>%d notifications: ops-wecom sent, failed; alertmanager sent ×%d (%d resends)</summary>", 3+2*resends, resends, resends-1)
		if !strings.Contains(row, want) {
			t.Errorf("the firing's row lacks %s:\n%s", want, row)
		}
		if !strings.Contains(row, "ops-wecom: sent (firing), attempt 2") {
			t.Errorf("the folded list does not show the second attempt:\n%s", row)
		}
	})
	t.Run("resends of alerts off the list are counted with a link", func(t *testing.T) {
		if !strings.Contains(history, "and 1 notification (resends) of alerts whose last transition is older than this list") {
			t.Errorf("no count of the other notifications:\n%s", history)
		}
	})
	t.Run("a resolved alert's value is the last one seen", func(t *testing.T) {
		resolved := section(body, "resolved")
		if !strings.Contains(resolved, "GlobexCalls") || !strings.Contains(resolved, `<span class="muted small">last value seen</span>`) {
			t.Errorf("the resolved alert does not say its value is the last seen:\n%s", resolved)
		}
		if !strings.Contains(history, "last value seen ") {
			t.Errorf("the resolved row of the history does not say its value is the last seen:\n%s", history)
		}
		if strings.Contains(section(body, "firing"), "last value seen") {
			t.Error("a firing alert's value is said to be the last seen")
		}
	})
}

func TestShareGroupTime(t *testing.T) {
	at := time.Unix(1764000000, 0)
	gv := groupView{LastEval: at, EvalTime: 7 * time.Millisecond, Rules: []ruleView{
		{LastEval: at, OwnTime: 10 * time.Microsecond, EvalTime: 10 * time.Microsecond},
		{LastEval: at, OwnTime: 20 * time.Microsecond, EvalTime: 20 * time.Microsecond},
		{LastEval: at, OwnTime: 10 * time.Microsecond, EvalTime: 10 * time.Microsecond},
		{LastEval: at.Add(-time.Minute), OwnTime: time.Millisecond, EvalTime: time.Millisecond},
	}}
	shareGroupTime(gv, []int{1, 2, 0, 5})
	ms := pageFuncs["ms"].(func(time.Duration) string)
	var got []string
	for _, rv := range gv.Rules {
		got = append(got, ms(rv.EvalTime))
	}
	// 6.96 ms outside the rules: a third to the rule with one leaf, two
	// thirds to the one with two; the rule of an older evaluation keeps
	// its own time.
	want := []string{"2.3 ms", "4.7 ms", "0.0 ms", "1.0 ms"}
	if !slices.Equal(got, want) {
		t.Errorf("shares %v, want %v", got, want)
	}
	t.Run("the rules' rows show the share and, on hover, both times", func(t *testing.T) {
		f := newPageFixture(t, "")
		_, body := fetch(t, browser(t), f.srv.URL+"/")
		rules := section(body, "rules")
		if n := strings.Count(rules, `<span title="its own `); n != 4 || !strings.Contains(rules, "the group spent querying its leaves together") {
			t.Errorf("%d rule times explained, want the fixture's 4:\n%s", n, rules)
		}
	})
	even := groupView{LastEval: at, EvalTime: 4 * time.Millisecond, Rules: []ruleView{{LastEval: at}, {LastEval: at}}}
	shareGroupTime(even, []int{0, 0})
	if even.Rules[0].EvalTime != 2*time.Millisecond || even.Rules[1].EvalTime != 2*time.Millisecond {
		t.Errorf("rules without leaves share %v and %v of 4ms, want 2ms each", even.Rules[0].EvalTime, even.Rules[1].EvalTime)
	}
}

func TestValueText(t *testing.T) {
	for _, tc := range []struct {
		v          float64
		unit, want string
	}{
		{6533230, "tokens", "6.533M tokens"},
		{3456.789, "ms", "3456.789 ms"},
		{120.5, "¥", "¥120.5"},
		{-3.25, "$", "-$3.25"},
		{0.05, "", "0.05"},
		{math.NaN(), "ms", "NaN"},
	} {
		if got := valueText(tc.v, tc.unit); got != tc.want {
			t.Errorf("valueText(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}
