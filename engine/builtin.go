package engine

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

// DatasourceDownName is the built-in alert raised when ClickHouse does not
// answer.
const DatasourceDownName = "DatasourceDown"

// CauseEventsTable is the value of DatasourceDown's cause label when
// ClickHouse answers but the events table is missing or no longer fits the
// schema (a ping's EventsTableError).
const CauseEventsTable = "events_table"

// EventsTableError is a ping's error when ClickHouse answers but the
// events table cannot serve the rules: it does not exist, or a column the
// schema maps is missing or of the wrong type. Err says what and what to
// run.
type EventsTableError struct{ Err error }

func (e *EventsTableError) Error() string { return e.Err.Error() }

// Unwrap returns the error of the table's check.
func (e *EventsTableError) Unwrap() error { return e.Err }

// DatasourceDownGroup returns a built-in group whose one alerting rule
// fires when ping fails for `for` (it goes through the default channels and
// the audit trail like any alert). The rule files' alerts meanwhile follow
// their error_state. When ping's error is an EventsTableError, the alert
// carries cause="events_table" and says the table, not the server, is the
// problem; the error itself is the statement of the rule's last
// evaluation (the status page and /api/v1/rules/evaluations show it).
func DatasourceDownGroup(ping func(ctx context.Context) error, interval, hold time.Duration, opts GroupOptions) *Group {
	e, _ := dsl.Parse("vector(1)", dsl.Options{Schema: opts.Schema})
	spec := &rulefmt.GroupSpec{Name: "callwatch-builtin", File: "<builtin>", Interval: interval, Rules: []*rulefmt.RuleSpec{{
		Alert: DatasourceDownName, ExprText: "built in: fires when ClickHouse does not answer SELECT 1, or the events table is missing or does not fit the schema (no expression to query)",
		Expr: e, For: hold, Severity: rulefmt.SeverityCritical,
		Labels: map[string]string{"alert_type": "datasource"},
		Annotations: map[string]string{
			"summary": `{{ if eq $labels.cause "` + CauseEventsTable + `" }}the events table is missing or does not fit the schema: rules cannot be evaluated and keep their last state; callwatch's log and this alert's rule on the status page say what is missing and what to run{{ else }}ClickHouse does not answer: rules cannot be evaluated and keep their last state{{ end }}`,
			"message": `{{ if eq $labels.cause "` + CauseEventsTable + `" }}事件表不存在或与 schema 不符：告警规则暂停评估并保持上次状态{{ else }}ClickHouse 无法连接：告警规则暂停评估并保持上次状态{{ end }}`,
		},
		NoDataState: rulefmt.OK, ErrorState: rulefmt.OK,
	}}}
	opts.Batch, opts.Coalescer = nil, nil
	opts.Query = func(ctx context.Context, _ *dsl.Expr, _ time.Time, _ SeriesSource) (Result, error) {
		if err := ping(ctx); err != nil && ctx.Err() == nil {
			ls := labels.EmptyLabels()
			if te := (*EventsTableError)(nil); errors.As(err, &te) {
				ls = labels.FromStrings("cause", CauseEventsTable)
			}
			return Result{Vector: []Sample{{Labels: ls, Value: 1}}, Statements: []string{"SELECT 1 /* " + err.Error() + " */"}}, nil
		}
		return Result{}, nil
	}
	return NewGroup(spec, opts)
}
