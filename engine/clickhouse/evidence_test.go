package clickhouse_test

import (
	"strings"
	"testing"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

func TestTheRequestIDColumnIsCreatedAndChecked(t *testing.T) {
	schema := dsl.DefaultSchema()
	schema.RequestID = "request_id"
	if ddl := clickhouse.EventsDDL("calls", schema); !strings.Contains(ddl, "`request_id` String") {
		t.Errorf("EventsDDL has no request_id column:\n%s", ddl)
	}
	cols := clickhouse.EventsColumns(schema)
	if err := cols.Check("calls", schema); err != nil {
		t.Fatalf("the table EventsDDL creates does not fit: %v", err)
	}
	for _, tc := range []struct {
		typ, want string
	}{
		{"", `column "request_id" (the request-id column) is missing; map an existing column in schema.request_id`},
		{"UInt64", `column "request_id" (the request-id column) has type UInt64; it must be String, FixedString, LowCardinality(String) or a UUID`},
		{"Nullable(UUID)", ""},
		{"LowCardinality(String)", ""},
	} {
		c := clickhouse.Columns{}
		for k, v := range cols {
			c[k] = v
		}
		delete(c, "request_id")
		if tc.typ != "" {
			c["request_id"] = tc.typ
		}
		err := c.Check("calls", schema)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("request_id %q: %v, want %q", tc.typ, err, tc.want)
		}
	}
}
