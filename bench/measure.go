// What a phase costs (queries, granules, CPU, memory) and the medians of
// the repetitions.

package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// peakRSS returns VmHWM, the process's peak resident set, in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// work is what a phase cost besides wall time: the SELECT queries the
// server ran and the granules (marks) of at most 8192 rows (the table's
// index_granularity) they read (ProfileEvents SelectQuery, SelectedMarks;
// 18.16 counts neither rows nor, behind its uncompressed cache, bytes
// reliably), the CPU time of the server's query threads (UserTime and
// SystemTimeMicroseconds) and the CPU time of this process. CPU time is
// much less disturbed than wall time by other load on a shared machine.
type work struct{ queries, marks, serverCPU, benchCPU float64 }

func (a work) sub(b work) work {
	// The probe that read a counts itself as a query.
	return work{a.queries - b.queries - 1, a.marks - b.marks, a.serverCPU - b.serverCPU, a.benchCPU - b.benchCPU}
}

func (a work) add(b work) work {
	return work{a.queries + b.queries, a.marks + b.marks, a.serverCPU + b.serverCPU, a.benchCPU + b.benchCPU}
}

func (a work) div(n int) work {
	f := float64(n)
	return work{a.queries / f, a.marks / f, a.serverCPU / f, a.benchCPU / f}
}

func (a work) String() string {
	return fmt.Sprintf("%s queries read %s granules (≈%s rows); CPU: server %.2f s, callwatch/client %.2f s",
		human(a.queries), human(a.marks), human(a.marks*8192), a.serverCPU, a.benchCPU)
}

// probe returns the server's cumulative SELECT counters (NaN when
// unavailable) and this process's CPU time so far.
func probe(ctx context.Context, conn clickhouse.Conn) work {
	w := work{benchCPU: processCPU()}
	if err := queryRow(ctx, conn, `SELECT toFloat64(sumIf(value, event = 'SelectQuery')), toFloat64(sumIf(value, event = 'SelectedMarks')),
    toFloat64(sumIf(value, event IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'))) / 1e6 FROM system.events`,
		&w.queries, &w.marks, &w.serverCPU); err != nil {
		w.queries, w.marks, w.serverCPU = math.NaN(), math.NaN(), math.NaN()
	}
	return w
}

// processCPU returns the user and system CPU time of this process, in
// seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func queryRow(ctx context.Context, conn clickhouse.Conn, sql string, dest ...any) error {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%s: no row", sql)
	}
	return rows.Scan(dest...)
}

// procField returns the value of the first "key: value" line of a /proc
// file, or "?".
func procField(file, key string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// memTotal returns the machine's memory, in GiB.
func memTotal() string {
	kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64)
	if err != nil {
		return "?"
	}
	return strconv.FormatFloat(kb/(1<<20), 'f', 1, 64) + " GiB"
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() [3]float64 {
	var l [3]float64
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(data))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// sampleLoad samples the 1-minute load average every 10s until stopped.
func sampleLoad(rep *report) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Go(func() {
		var sum float64
		n := 0
		rep.loadMin = math.Inf(1)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			l := loadAvg()[0]
			sum += l
			n++
			rep.loadMin, rep.loadMax, rep.loadMean = min(rep.loadMin, l), max(rep.loadMax, l), sum/float64(n)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() {
		once.Do(func() { close(done); wg.Wait() })
	}
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

// timing is one measurement: the total and its share per window (5m, 1h,
// 1d).
type timing struct {
	total     time.Duration
	perWindow [3]time.Duration
	// parts are the times of the queries (handwritten) or groups
	// (callwatch), by name.
	parts map[string]time.Duration
}

func (t *timing) addPart(name string, d time.Duration) {
	if t.parts == nil {
		t.parts = map[string]time.Duration{}
	}
	t.parts[name] += d
}

// windowMedian returns the median over the measurements of window w.
func windowMedian(ts []timing, w int) time.Duration {
	ds := make([]time.Duration, len(ts))
	for i, t := range ts {
		ds[i] = t.perWindow[w]
	}
	return median(ds)
}

// partMedians returns the median of every part over the measurements, in
// the order of names.
func partMedians(ts []timing) (names []string, ds []time.Duration) {
	if len(ts) == 0 {
		return nil, nil
	}
	for n := range ts[0].parts {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var all []time.Duration
		for _, t := range ts {
			all = append(all, t.parts[n])
		}
		ds = append(ds, median(all))
	}
	return names, ds
}

// medianTiming returns the measurement whose total is the median.
func medianTiming(ts []timing) timing {
	if len(ts) == 0 {
		return timing{}
	}
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b timing) int { return int(a.total - b.total) })
	return s[(len(s)+1)/2-1]
}

func totals(ts []timing) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = strconv.FormatFloat(t.total.Seconds(), 'f', 3, 64)
	}
	return strings.Join(s, " ")
}

// percentile returns the nearest-rank φ-percentile of ds.
func percentile(ds []time.Duration, phi float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(phi*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// medianDuration returns the median of ds (0 when empty).
func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// durations writes ds in seconds, in order.
func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.3f", d.Seconds())
	}
	return strings.Join(parts, " ")
}
