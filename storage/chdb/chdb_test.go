package chdb

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
	"github.com/callwatch/callwatch/internal/storetest"
)

func TestOpenWithoutTheLibrarySaysHowToGetIt(t *testing.T) {
	t.Chdir(t.TempDir())
	for name, opts := range map[string]Options{
		"a library path that does not exist": {Path: t.TempDir(), Library: "/nonexistent/libchdb.so"},
		"no library anywhere":                {Path: t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(LibraryEnv, filepath.Join(t.TempDir(), "libchdb.so"))
			_, err := Open(context.Background(), opts)
			if !errors.Is(err, ErrNoLibrary) {
				t.Fatalf("err = %v, want ErrNoLibrary", err)
			}
			for _, want := range []string{"make chdb", "npm pack @chdb/lib-linux-x64-gnu@" + Version, LibraryEnv} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
		})
	}
}

func TestOpenRejectsAFileThatIsNotTheLibrary(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "libchdb.so")
	if err := os.WriteFile(lib, []byte("not a shared object"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{Path: t.TempDir(), Library: lib})
	if err == nil || errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), lib) {
		t.Fatalf("err = %v, want a load error naming the file", err)
	}
}

func TestOpenNeedsADataDirectory(t *testing.T) {
	if _, err := Open(context.Background(), Options{}); err == nil {
		t.Fatal("Open without a path succeeded")
	}
}

func TestTheMakefilePinsThisVersion(t *testing.T) {
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "chdb.mk"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "CHDB_VERSION := " + Version + "\n"; !strings.Contains(string(mk), want) {
		t.Fatalf("chdb.mk does not pin %s (want the line %q)", Version, want)
	}
}

func TestTheEngineIsClickHouse26(t *testing.T) {
	c := session(t)
	var v string
	queryOne(t, c, "SELECT version()", nil, &v)
	if !strings.HasPrefix(v, "26.") {
		t.Fatalf("version() = %s, want 26.x", v)
	}
	t.Logf("ClickHouse %s, library %s", v, c.Library())
}

func TestQueryScansTheTypesCallwatchReads(t *testing.T) {
	c := session(t)
	var (
		s    string
		f    float64
		i    int64
		u32  uint32
		u64  uint64
		at   time.Time
		null any
	)
	queryOne(t, c, "SELECT ?, toFloat64(?), toInt64(?), toUInt32(?), toUInt64(?), toDateTime(?, 'UTC'), NULL",
		[]any{"租户", 0.1, int64(-7), int64(4_000_000_000), uint64(math.MaxUint64), int64(1764000000)},
		&s, &f, &i, &u32, &u64, &at, &null)
	if s != "租户" || f != 0.1 || i != -7 || u32 != 4_000_000_000 || u64 != math.MaxUint64 || at.Unix() != 1764000000 || null != nil {
		t.Fatalf("got %q %v %v %v %v %v %v", s, f, i, u32, u64, at, null)
	}
	// An integer literal is the smallest type that holds it: extremes too.
	var minInt int64
	queryOne(t, c, "SELECT toInt64(?)", []any{int64(math.MinInt64)}, &minInt)
	if minInt != math.MinInt64 {
		t.Fatalf("min int64 read back as %d", minInt)
	}
}

// TestFloatsRoundTripExactly binds random float64s (every bit pattern is
// as likely, so every exponent and subnormals are covered) and special
// values as literals, reads them back and requires the same bits: the
// literal is the shortest decimal that parses back to the same float, and
// the result is the float's binary form. It checks the same through a
// Float64 column of a table, as events are stored.
func TestFloatsRoundTripExactly(t *testing.T) {
	c, db := newDatabase(t)
	rng := rand.New(rand.NewPCG(3, 5))
	vals := []float64{0, math.Copysign(0, -1), 0.1, 1.0 / 3, -2.5, 1e-310, math.SmallestNonzeroFloat64, math.MaxFloat64,
		-math.MaxFloat64, 0.15951100000000001, 0.159511, 9007199254740993, math.Inf(1), math.Inf(-1), math.NaN()}
	for len(vals) < 20000 {
		x := math.Float64frombits(rng.Uint64())
		if !math.IsNaN(x) {
			vals = append(vals, x)
		}
	}
	same := func(a, b float64) bool {
		return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
	}
	mustExec(t, c, "CREATE TABLE "+db+".floats (i UInt32, x Float64) ENGINE = MergeTree ORDER BY i")
	const batch = 2000
	for start := 0; start < len(vals); start += batch {
		part := vals[start:min(start+batch, len(vals))]
		ph := make([]string, len(part))
		args := make([]any, 0, 2*len(part))
		for i, v := range part {
			ph[i] = "?"
			args = append(args, v)
		}
		// Literals straight back, in order.
		n := 0
		queryRows(t, c, "SELECT arrayJoin(["+strings.Join(ph, ", ")+"])", args, func(r *Rows) error {
			var x float64
			if err := r.Scan(&x); err != nil {
				return err
			}
			if want := part[n]; !same(x, want) {
				t.Errorf("literal %s read back as %v (bits %#x, want %#x)", floatLiteral(want), x, math.Float64bits(x), math.Float64bits(want))
			}
			n++
			return nil
		})
		if n != len(part) {
			t.Fatalf("%d values read back, want %d", n, len(part))
		}
		// Into a table with INSERT … VALUES.
		args = args[:0]
		for i, v := range part {
			ph[i] = "(?, ?)"
			args = append(args, uint32(start+i), v)
		}
		mustExec(t, c, "INSERT INTO "+db+".floats VALUES "+strings.Join(ph, ", "), args...)
	}
	n := 0
	queryRows(t, c, "SELECT i, x FROM "+db+".floats ORDER BY i", nil, func(r *Rows) error {
		var i uint32
		var x float64
		if err := r.Scan(&i, &x); err != nil {
			return err
		}
		if !same(x, vals[i]) {
			t.Errorf("stored %v, read %v", vals[i], x)
		}
		n++
		return nil
	})
	if n != len(vals) {
		t.Fatalf("%d rows stored, want %d", n, len(vals))
	}
}

// TestHostileValuesAreBoundLiterally stores hostile values through bound
// INSERT … VALUES, then finds each by equality and reads it back: every
// value matches exactly its own row, and the table named in the payloads
// survives.
func TestHostileValuesAreBoundLiterally(t *testing.T) {
	c, db := newDatabase(t)
	mustExec(t, c, "CREATE TABLE "+db+".victim (x UInt8) ENGINE = Memory")
	mustExec(t, c, "INSERT INTO "+db+".victim VALUES (1)")
	mustExec(t, c, "CREATE TABLE "+db+".vals (i UInt32, s String) ENGINE = MergeTree ORDER BY i")
	vals := storetest.HostileValues()
	ph := make([]string, len(vals))
	var args []any
	for i, v := range vals {
		ph[i] = "(?, ?)"
		args = append(args, uint32(i), v)
	}
	mustExec(t, c, "INSERT INTO "+db+".vals VALUES "+strings.Join(ph, ", "), args...)
	for i, v := range vals {
		name := v
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(name, func(t *testing.T) {
			var ids []uint32
			queryRows(t, c, "SELECT i FROM "+db+".vals WHERE s = ? ORDER BY i", []any{v}, func(r *Rows) error {
				var id uint32
				ids = append(ids, id)
				return r.Scan(&ids[len(ids)-1])
			})
			if len(ids) != 1 || ids[0] != uint32(i) {
				t.Errorf("s = value matched rows %v, want [%d]", ids, i)
			}
			var stored, echoed string
			queryOne(t, c, "SELECT s, ? FROM "+db+".vals WHERE i = ?", []any{v, uint32(i)}, &stored, &echoed)
			if stored != v || echoed != v {
				t.Errorf("stored %q, echoed %q, want %q", stored, echoed, v)
			}
			var others uint64
			queryOne(t, c, "SELECT count() FROM "+db+".vals WHERE s != ?", []any{v}, &others)
			if others != uint64(len(vals)-1) {
				t.Errorf("s != value matched %d rows, want %d", others, len(vals)-1)
			}
		})
	}
	var victims uint64
	queryOne(t, c, "SELECT count() FROM "+db+".victim", nil, &victims)
	if victims != 1 {
		t.Fatalf("the victim table has %d rows", victims)
	}
}

func TestErrorsCarryClickHouseMessage(t *testing.T) {
	c := session(t)
	_, err := c.Query(context.Background(), "SELECT * FROM no_such_database.no_such_table")
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "UNKNOWN_DATABASE") {
		t.Fatalf("err = %v, want an *Error with ClickHouse's message", err)
	}
	if err := c.Exec(context.Background(), "SELEC 1"); !errors.As(err, &e) || !strings.Contains(e.Message, "SYNTAX_ERROR") {
		t.Fatalf("err = %v, want a syntax error", err)
	}
	// The session still works.
	var x float64
	queryOne(t, c, "SELECT toFloat64(?) + 1", []any{41}, &x)
	if x != 42 {
		t.Fatalf("got %v", x)
	}
}

func TestConcurrentCallsAreSerialized(t *testing.T) {
	c := session(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				rows, err := c.Query(context.Background(), "SELECT toFloat64(?) * 2, ?", float64(g*100+i), "g")
				if err != nil {
					errs <- err
					return
				}
				var x float64
				var s string
				if !rows.Next() {
					errs <- errors.New("no row")
					return
				}
				if err := rows.Scan(&x, &s); err != nil || x != float64(2*(g*100+i)) || s != "g" {
					errs <- errors.New("wrong row")
				}
				rows.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAnEndedContextReturnsAtOnce(t *testing.T) {
	c := session(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Query(ctx, "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// A statement that outlives its context: the call returns when the
	// context ends, the statement finishes in the background, and the next
	// call waits for it.
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Exec(ctx, "SELECT sleep(2)")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("err = %v after %v, want context.DeadlineExceeded at once", err, time.Since(start))
	}
	var x float64
	queryOne(t, c, "SELECT toFloat64(?)", []any{1.5}, &x)
	if x != 1.5 {
		t.Fatalf("got %v", x)
	}
}
