package chtest

import "fmt"

// Rows are canned query results for tests that need no server: a
// clickhouse.Rows (it is not named here, so that package clickhouse's own
// tests can use it) whose Scan fills *string from string values and
// *float64 from float64 or int values.
type Rows struct {
	// Rows are the rows, each a value per column.
	Rows [][]any
	i    int
}

// Next moves to the next row.
func (r *Rows) Next() bool { r.i++; return r.i <= len(r.Rows) }

// Scan copies the current row's values into dest, one per column.
func (r *Rows) Scan(dest ...any) error {
	row := r.Rows[r.i-1]
	if len(dest) != len(row) {
		return fmt.Errorf("chtest: scan %d columns of a row of %d", len(dest), len(row))
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *string:
			s, ok := row[i].(string)
			if !ok {
				return fmt.Errorf("chtest: column %d is %T, not string", i, row[i])
			}
			*d = s
		case *float64:
			switch v := row[i].(type) {
			case float64:
				*d = v
			case int:
				*d = float64(v)
			default:
				return fmt.Errorf("chtest: column %d is %T, not a number", i, row[i])
			}
		default:
			return fmt.Errorf("chtest: scan into an unsupported type %T", d)
		}
	}
	return nil
}

// Err returns nil: canned rows do not fail.
func (r *Rows) Err() error { return nil }

// Close does nothing.
func (r *Rows) Close() error { return nil }
