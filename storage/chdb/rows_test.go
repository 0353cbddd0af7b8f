package chdb

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// rowBinary builds a RowBinaryWithNamesAndTypes result by hand.
type rowBinary struct{ b []byte }

func (w *rowBinary) str(s string) *rowBinary {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
	return w
}

func (w *rowBinary) header(cols ...string) *rowBinary {
	w.b = binary.AppendUvarint(w.b, uint64(len(cols)/2))
	for i := 0; i < len(cols); i += 2 {
		w.str(cols[i])
	}
	for i := 1; i < len(cols); i += 2 {
		w.str(cols[i])
	}
	return w
}

func (w *rowBinary) raw(b ...byte) *rowBinary { w.b = append(w.b, b...); return w }

func (w *rowBinary) u32(x uint32) *rowBinary {
	w.b = binary.LittleEndian.AppendUint32(w.b, x)
	return w
}

func (w *rowBinary) u64(x uint64) *rowBinary {
	w.b = binary.LittleEndian.AppendUint64(w.b, x)
	return w
}

func TestRowsDecodeByTheHeaderTypes(t *testing.T) {
	at := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	w := (&rowBinary{}).header(
		"s", "String", "f", "Float64", "i", "Int64", "u", "UInt32", "dt", "DateTime('UTC')",
		"d64", "DateTime64(3)", "n", "Nullable(Float64)", "lc", "LowCardinality(String)", "fs", "FixedString(3)", "b", "Bool",
	)
	w.str("租户").u64(math.Float64bits(0.1)).u64(uint64(1<<63-1)).u32(4_000_000_000).u32(uint32(at.Unix())).
		u64(uint64(at.UnixMilli()+5)).raw(1).str("x").raw('a', 0, 'c').raw(1)
	w.str("").u64(math.Float64bits(math.Copysign(0, -1))).u64(uint64(1<<64-1)).u32(0).u32(0).
		u64(0).raw(0).u64(math.Float64bits(2.5)).str("").raw(0, 0, 0).raw(0)
	rows, err := newRows(w.b)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows.Columns(), ","); got != "s,f,i,u,dt,d64,n,lc,fs,b" {
		t.Fatalf("columns = %s", got)
	}
	var got [][]any
	for rows.Next() {
		row := make([]any, 10)
		dest := make([]any, 10)
		for i := range row {
			dest[i] = &row[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		got = append(got, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d rows", len(got))
	}
	r0, r1 := got[0], got[1]
	if r0[0] != "租户" || r0[1] != 0.1 || r0[2] != int64(1<<63-1) || r0[3] != uint64(4_000_000_000) ||
		!r0[4].(time.Time).Equal(at) || !r0[5].(time.Time).Equal(at.Add(5*time.Millisecond)) || r0[6] != nil ||
		r0[7] != "x" || r0[8] != "a\x00c" || r0[9] != true {
		t.Errorf("row 0 = %#v", r0)
	}
	if f := r1[1].(float64); f != 0 || !math.Signbit(f) {
		t.Errorf("negative zero read as %v", f)
	}
	if r1[2] != int64(-1) || r1[6] != 2.5 || r1[9] != false {
		t.Errorf("row 1 = %#v", r1)
	}
}

func TestScanConvertsOnlyWhatFits(t *testing.T) {
	cases := []struct {
		name string
		v    value
		dest any
		want any
		err  error
	}{
		{"UInt32 into uint32", value{kind: kUint, u: 7}, new(uint32), uint32(7), nil},
		{"UInt32 into int64", value{kind: kUint, u: 7}, new(int64), int64(7), nil},
		{"UInt64 above int64 into int64", value{kind: kUint, u: 1 << 63}, new(int64), nil, errRange},
		{"Int64 into uint32", value{kind: kInt, i: 1 << 40}, new(uint32), nil, errRange},
		{"negative Int64 into uint64", value{kind: kInt, i: -1}, new(uint64), nil, errRange},
		{"Int64 into float64 exactly", value{kind: kInt, i: 1 << 53}, new(float64), float64(1 << 53), nil},
		{"Int64 into float64 inexactly", value{kind: kInt, i: 1<<53 + 1}, new(float64), nil, errRange},
		{"Float64 into int64", value{kind: kFloat, f: 1}, new(int64), nil, errMismatch},
		{"Float64 into float32 inexactly", value{kind: kFloat, f: 0.1}, new(float32), nil, errRange},
		{"String into float64", value{kind: kString, s: "1"}, new(float64), nil, errMismatch},
		{"NULL into string", value{null: true}, new(string), nil, errNull},
		{"String into []byte", value{kind: kString, s: "ab"}, new([]byte), "ab", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := assign(tc.dest, tc.v)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			var got any
			switch d := tc.dest.(type) {
			case *uint32:
				got = *d
			case *int64:
				got = *d
			case *float64:
				got = *d
			case *[]byte:
				got = string(*d)
			}
			if got != tc.want {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestRowsReportATruncatedResult(t *testing.T) {
	w := (&rowBinary{}).header("f", "Float64").u64(1).raw(1, 2, 3)
	rows, err := newRows(w.b)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if n != 1 || rows.Err() == nil {
		t.Fatalf("%d rows, err %v; want 1 row and an error", n, rows.Err())
	}
	if _, err := newRows([]byte{2, 1, 'a'}); err == nil {
		t.Fatal("a truncated header was accepted")
	}
	if _, err := newRows((&rowBinary{}).header("a", "Array(String)").b); err == nil || !strings.Contains(err.Error(), "convert it in the query") {
		t.Fatalf("err = %v for an unsupported type", err)
	}
}
