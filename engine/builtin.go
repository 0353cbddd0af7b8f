package engine

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

// DatasourceDownName is the built-in alert raised when ClickHouse does not
// answer.
const DatasourceDownName = "DatasourceDown"

// DatasourceDownGroup returns a built-in group whose one alerting rule
// fires when ping fails for `for` (it goes through the default channels and
// the audit trail like any alert). The rule files' alerts meanwhile follow
// their error_state.
func DatasourceDownGroup(ping func(ctx context.Context) error, interval, hold time.Duration, opts GroupOptions) *Group {
	e, _ := dsl.Parse("vector(1)", dsl.Options{Schema: opts.Schema})
	spec := &rulefmt.GroupSpec{Name: "callwatch-builtin", File: "<builtin>", Interval: interval, Rules: []*rulefmt.RuleSpec{{
		Alert: DatasourceDownName, ExprText: "built in: fires when ClickHouse does not answer SELECT 1 (no expression to query)", Expr: e, For: hold, Severity: rulefmt.SeverityCritical,
		Labels:      map[string]string{"alert_type": "datasource"},
		Annotations: map[string]string{"summary": "ClickHouse does not answer: rules cannot be evaluated and keep their last state", "message": "ClickHouse 无法连接：告警规则暂停评估并保持上次状态"},
		NoDataState: rulefmt.OK, ErrorState: rulefmt.OK,
	}}}
	opts.Batch, opts.Coalescer = nil, nil
	opts.Query = func(ctx context.Context, _ *dsl.Expr, _ time.Time, _ SeriesSource) (Result, error) {
		if err := ping(ctx); err != nil && ctx.Err() == nil {
			return Result{Vector: []Sample{{Labels: labels.EmptyLabels(), Value: 1}}, Statements: []string{"SELECT 1 /* " + err.Error() + " */"}}, nil
		}
		return Result{}, nil
	}
	return NewGroup(spec, opts)
}
