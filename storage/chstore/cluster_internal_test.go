package chstore

import (
	"context"
	"testing"
)

// TestHasColumnsNamesEveryColumn: the check that a statement ON CLUSTER
// has done its part on the connected server looks for each column by name,
// so a table with as many columns, one of them added by hand and one of
// the new ones missing, is not taken for migrated.
func TestHasColumnsNamesEveryColumn(t *testing.T) {
	conn, db := serverDatabase(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".t (`a` String, `b` String, `by_hand` String) ENGINE = Log"); err != nil {
		t.Fatal(err)
	}
	if !hasColumns(conn, db+".t")(ctx) {
		t.Error("the table exists, but hasColumns with no names says it does not")
	}
	if hasColumns(conn, db+".t", "a", "b", "c")(ctx) {
		t.Error(`hasColumns("a", "b", "c") is true on a table without c (three columns all the same)`)
	}
	if !hasColumns(conn, db+".t", "a", "b")(ctx) {
		t.Error(`hasColumns("a", "b") is false on a table with both`)
	}
	if hasColumns(conn, db+".missing")(ctx) {
		t.Error("hasColumns is true for a table that does not exist")
	}
}
