package chdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// Rows reads a result in RowBinaryWithNamesAndTypes: a header with the
// columns' names and types, then every value in its binary form (Float64 as
// its 8 bytes, so floats arrive exactly as ClickHouse computed them).
type Rows struct {
	buf    []byte
	pos    int
	cols   []column
	cur    []value
	err    error
	closed bool
}

var _ clickhouse.Rows = (*Rows)(nil)

// column is a result column and the decoder of its type.
type column struct {
	name, typ string
	dec       decoder
}

// kind is the Go family of a decoded value.
type kind uint8

const (
	kString kind = iota
	kInt
	kUint
	kFloat
	kBool
	kTime
)

// value is one decoded value.
type value struct {
	kind kind
	null bool
	i    int64
	u    uint64
	f    float64
	s    string
	t    time.Time
}

type decoder func(r *reader) (value, error)

var errShort = errors.New("truncated result")

// reader reads the binary result.
type reader struct {
	buf []byte
	pos int
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || len(r.buf)-r.pos < n {
		return nil, errShort
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

func (r *reader) uvarint() (uint64, error) {
	x, n := binary.Uvarint(r.buf[r.pos:])
	if n <= 0 {
		return 0, errShort
	}
	r.pos += n
	return x, nil
}

func (r *reader) string() (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(len(r.buf)-r.pos) {
		return "", errShort
	}
	b, err := r.bytes(int(n))
	return string(b), err
}

// newRows parses the header of a result. An empty result (a statement with
// no output) has no columns and no rows.
func newRows(buf []byte) (*Rows, error) {
	r := &reader{buf: buf}
	rows := &Rows{}
	if len(buf) == 0 {
		return rows, nil
	}
	n, err := r.uvarint()
	if err != nil || n > uint64(len(buf)) {
		return nil, fmt.Errorf("chdb: read result header: %w", errShort)
	}
	rows.cols = make([]column, n)
	for i := range rows.cols {
		if rows.cols[i].name, err = r.string(); err != nil {
			return nil, fmt.Errorf("chdb: read result header: %w", err)
		}
	}
	for i := range rows.cols {
		c := &rows.cols[i]
		if c.typ, err = r.string(); err != nil {
			return nil, fmt.Errorf("chdb: read result header: %w", err)
		}
		if c.dec, err = typeDecoder(c.typ); err != nil {
			return nil, fmt.Errorf("chdb: result column %s: %w", c.name, err)
		}
	}
	rows.buf, rows.pos = buf, r.pos
	rows.cur = make([]value, n)
	return rows, nil
}

// typeDecoder returns the decoder of a ClickHouse type.
func typeDecoder(typ string) (decoder, error) {
	if inner, ok := unwrap(typ, "Nullable"); ok {
		dec, err := typeDecoder(inner)
		if err != nil {
			return nil, err
		}
		return func(r *reader) (value, error) {
			b, err := r.bytes(1)
			if err != nil {
				return value{}, err
			}
			if b[0] != 0 {
				return value{null: true}, nil
			}
			return dec(r)
		}, nil
	}
	if inner, ok := unwrap(typ, "LowCardinality"); ok {
		// RowBinary writes a LowCardinality(T) value as a T.
		return typeDecoder(inner)
	}
	fixed := func(n int, f func(b []byte) value) decoder {
		return func(r *reader) (value, error) {
			b, err := r.bytes(n)
			if err != nil {
				return value{}, err
			}
			return f(b), nil
		}
	}
	le := binary.LittleEndian
	switch typ {
	case "Nothing":
		// The type of NULL: only Nullable(Nothing) has values, all NULL.
		return func(_ *reader) (value, error) { return value{null: true}, nil }, nil
	case "String":
		return func(r *reader) (value, error) {
			s, err := r.string()
			return value{kind: kString, s: s}, err
		}, nil
	case "UInt8":
		return fixed(1, func(b []byte) value { return value{kind: kUint, u: uint64(b[0])} }), nil
	case "UInt16":
		return fixed(2, func(b []byte) value { return value{kind: kUint, u: uint64(le.Uint16(b))} }), nil
	case "UInt32":
		return fixed(4, func(b []byte) value { return value{kind: kUint, u: uint64(le.Uint32(b))} }), nil
	case "UInt64":
		return fixed(8, func(b []byte) value { return value{kind: kUint, u: le.Uint64(b)} }), nil
	case "Int8":
		return fixed(1, func(b []byte) value { return value{kind: kInt, i: int64(int8(b[0]))} }), nil
	case "Int16":
		return fixed(2, func(b []byte) value { return value{kind: kInt, i: int64(int16(le.Uint16(b)))} }), nil
	case "Int32":
		return fixed(4, func(b []byte) value { return value{kind: kInt, i: int64(int32(le.Uint32(b)))} }), nil
	case "Int64":
		return fixed(8, func(b []byte) value { return value{kind: kInt, i: int64(le.Uint64(b))} }), nil
	case "Float32":
		return fixed(4, func(b []byte) value { return value{kind: kFloat, f: float64(math.Float32frombits(le.Uint32(b)))} }), nil
	case "Float64":
		return fixed(8, func(b []byte) value { return value{kind: kFloat, f: math.Float64frombits(le.Uint64(b))} }), nil
	case "Bool":
		return fixed(1, func(b []byte) value { return value{kind: kBool, u: uint64(b[0])} }), nil
	case "Date":
		return fixed(2, func(b []byte) value {
			return value{kind: kTime, t: time.Unix(int64(le.Uint16(b))*86400, 0).UTC()}
		}), nil
	case "Date32":
		return fixed(4, func(b []byte) value {
			return value{kind: kTime, t: time.Unix(int64(int32(le.Uint32(b)))*86400, 0).UTC()}
		}), nil
	}
	if typ == "DateTime" || strings.HasPrefix(typ, "DateTime(") {
		return fixed(4, func(b []byte) value { return value{kind: kTime, t: time.Unix(int64(le.Uint32(b)), 0).UTC()} }), nil
	}
	if args, ok := unwrap(typ, "DateTime64"); ok {
		p, err := strconv.Atoi(strings.TrimSpace(strings.Split(args, ",")[0]))
		if err != nil || p < 0 || p > 9 {
			return nil, fmt.Errorf("unsupported type %s", typ)
		}
		scale := int64(math.Pow10(p))
		return fixed(8, func(b []byte) value {
			ticks := int64(le.Uint64(b))
			sec, frac := ticks/scale, ticks%scale
			if frac < 0 {
				sec, frac = sec-1, frac+scale
			}
			return value{kind: kTime, t: time.Unix(sec, frac*(1e9/scale)).UTC()}
		}), nil
	}
	if args, ok := unwrap(typ, "FixedString"); ok {
		n, err := strconv.Atoi(args)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("unsupported type %s", typ)
		}
		return fixed(n, func(b []byte) value { return value{kind: kString, s: string(b)} }), nil
	}
	return nil, fmt.Errorf("unsupported type %s: convert it in the query (toString, toFloat64, toInt64)", typ)
}

// unwrap returns T of name(T).
func unwrap(typ, name string) (string, bool) {
	if strings.HasPrefix(typ, name+"(") && strings.HasSuffix(typ, ")") {
		return typ[len(name)+1 : len(typ)-1], true
	}
	return "", false
}

// Columns returns the names of the result's columns.
func (rs *Rows) Columns() []string {
	names := make([]string, len(rs.cols))
	for i, c := range rs.cols {
		names[i] = c.name
	}
	return names
}

// Next decodes the next row and reports whether there was one.
func (rs *Rows) Next() bool {
	if rs.closed || rs.err != nil || rs.pos >= len(rs.buf) || len(rs.cols) == 0 {
		return false
	}
	r := &reader{buf: rs.buf, pos: rs.pos}
	for i, c := range rs.cols {
		v, err := c.dec(r)
		if err != nil {
			rs.err = fmt.Errorf("chdb: read column %s of a row: %w", c.name, err)
			return false
		}
		rs.cur[i] = v
	}
	rs.pos = r.pos
	return true
}

// Scan copies the current row into dest, one pointer per column.
func (rs *Rows) Scan(dest ...any) error {
	if len(dest) != len(rs.cols) {
		return fmt.Errorf("chdb: scan %d columns into %d destinations", len(rs.cols), len(dest))
	}
	for i, d := range dest {
		if err := assign(d, rs.cur[i]); err != nil {
			c := rs.cols[i]
			return fmt.Errorf("chdb: scan column %s (%s) into %T: %w", c.name, c.typ, d, err)
		}
	}
	return nil
}

// Err returns the error that ended the iteration, if any.
func (rs *Rows) Err() error { return rs.err }

// Close releases the rows.
func (rs *Rows) Close() error {
	rs.closed, rs.buf = true, nil
	return nil
}

var (
	errMismatch = errors.New("incompatible types")
	errRange    = errors.New("value out of range")
	errNull     = errors.New("NULL")
)

// assign stores v in the pointer d, converting only when the value fits
// exactly.
func assign(d any, v value) error {
	if p, ok := d.(*any); ok {
		*p = v.natural()
		return nil
	}
	if v.null {
		return errNull
	}
	switch p := d.(type) {
	case *string:
		if v.kind != kString {
			return errMismatch
		}
		*p = v.s
	case *[]byte:
		if v.kind != kString {
			return errMismatch
		}
		*p = []byte(v.s)
	case *float64:
		f, err := v.float()
		if err != nil {
			return err
		}
		*p = f
	case *float32:
		f, err := v.float()
		if err != nil {
			return err
		}
		if float64(float32(f)) != f && !math.IsNaN(f) {
			return errRange
		}
		*p = float32(f)
	case *int64:
		return setSigned(p, v)
	case *int:
		return setSigned(p, v)
	case *int32:
		return setSigned(p, v)
	case *int16:
		return setSigned(p, v)
	case *int8:
		return setSigned(p, v)
	case *uint64:
		return setUnsigned(p, v)
	case *uint:
		return setUnsigned(p, v)
	case *uint32:
		return setUnsigned(p, v)
	case *uint16:
		return setUnsigned(p, v)
	case *uint8:
		return setUnsigned(p, v)
	case *bool:
		switch {
		case (v.kind == kBool || v.kind == kUint) && v.u <= 1:
			*p = v.u == 1
		case v.kind == kInt && (v.i == 0 || v.i == 1):
			*p = v.i == 1
		default:
			return errMismatch
		}
	case *time.Time:
		if v.kind != kTime {
			return errMismatch
		}
		*p = v.t
	default:
		return errors.New("unsupported destination type")
	}
	return nil
}

// float converts a number to float64 when it is exact.
func (v value) float() (float64, error) {
	switch v.kind {
	case kFloat:
		return v.f, nil
	case kInt:
		if f := float64(v.i); f < 1<<63 && int64(f) == v.i {
			return f, nil
		}
		return 0, errRange
	case kUint:
		if f := float64(v.u); f < 1<<64 && uint64(f) == v.u {
			return f, nil
		}
		return 0, errRange
	}
	return 0, errMismatch
}

func setSigned[T int | int8 | int16 | int32 | int64](p *T, v value) error {
	var x int64
	switch v.kind {
	case kInt:
		x = v.i
	case kUint:
		if v.u > math.MaxInt64 {
			return errRange
		}
		x = int64(v.u)
	default:
		return errMismatch
	}
	if int64(T(x)) != x {
		return errRange
	}
	*p = T(x)
	return nil
}

func setUnsigned[T uint | uint8 | uint16 | uint32 | uint64](p *T, v value) error {
	var x uint64
	switch v.kind {
	case kUint:
		x = v.u
	case kInt:
		if v.i < 0 {
			return errRange
		}
		x = uint64(v.i)
	default:
		return errMismatch
	}
	if uint64(T(x)) != x {
		return errRange
	}
	*p = T(x)
	return nil
}

// natural is the value as the Go type of its column: string, int64,
// uint64, float64, bool, time.Time, or nil for NULL.
func (v value) natural() any {
	if v.null {
		return nil
	}
	switch v.kind {
	case kString:
		return v.s
	case kInt:
		return v.i
	case kUint:
		return v.u
	case kFloat:
		return v.f
	case kBool:
		return v.u != 0
	case kTime:
		return v.t
	}
	return nil
}
