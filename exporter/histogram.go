package exporter

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// nativeZeroThreshold is the width of the native histogram's zero bucket:
// client_golang's default, so only durations of (practically) zero land in
// it. Negative durations, which are invalid data, are counted there too.
const nativeZeroThreshold = prometheus.DefNativeHistogramZeroThreshold

// histogram is the state of one call duration histogram: classic bucket
// counts (not cumulative, the last one above the highest bound) and native
// bucket counts keyed by bucket index.
type histogram struct {
	classic []uint64
	native  map[int32]uint64
	zero    uint64
}

func newHistogram(nClassic int) histogram {
	return histogram{classic: make([]uint64, nClassic+1), native: map[int32]uint64{}}
}

func (h *histogram) add(o histogram) {
	for i, n := range o.classic {
		h.classic[i] += n
	}
	for k, n := range o.native {
		h.native[k] += n
	}
	h.zero += o.zero
}

func (h histogram) clone() histogram {
	c := histogram{classic: append([]uint64(nil), h.classic...), native: make(map[int32]uint64, len(h.native)), zero: h.zero}
	for k, n := range h.native {
		c.native[k] = n
	}
	return c
}

// histogramMetric is a constant histogram that carries classic buckets and,
// optionally, native buckets. client_golang's const histograms carry one kind
// or the other; a scrape in the protobuf format gets both from this one, as
// from a client_golang Histogram with both configured, and the text formats
// get the classic buckets.
type histogramMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	h      *dto.Histogram
}

var _ prometheus.Metric = (*histogramMetric)(nil)

// histogramOptions shape the dto of a histogram.
type histogramOptions struct {
	bounds  []float64
	native  bool
	schema  int32
	created time.Time
}

// newHistogramMetric returns the metric of h, whose count is count and sum
// is sum.
func newHistogramMetric(desc *prometheus.Desc, opts histogramOptions, h histogram, count uint64, sum float64, labelValues ...string) *histogramMetric {
	d := &dto.Histogram{
		SampleCount:      &count,
		SampleSum:        &sum,
		CreatedTimestamp: timestamppb.New(opts.created),
	}
	var cum uint64
	for i, b := range opts.bounds {
		cum += h.classic[i]
		d.Bucket = append(d.Bucket, &dto.Bucket{CumulativeCount: new(cum), UpperBound: new(b)})
	}
	if opts.native {
		d.Schema = new(opts.schema)
		d.ZeroThreshold = new(nativeZeroThreshold)
		d.ZeroCount = new(h.zero)
		d.PositiveSpan, d.PositiveDelta = nativeSpans(h.native)
		if len(d.PositiveSpan) == 0 {
			// An empty span marks the histogram as native even without
			// observations, as client_golang does.
			d.PositiveSpan = []*dto.BucketSpan{{Offset: new(int32(0)), Length: new(uint32(0))}}
		}
	}
	return &histogramMetric{desc: desc, labels: prometheus.MakeLabelPairs(desc, labelValues), h: d}
}

// Desc implements prometheus.Metric.
func (m *histogramMetric) Desc() *prometheus.Desc { return m.desc }

// Write implements prometheus.Metric.
func (m *histogramMetric) Write(out *dto.Metric) error {
	out.Histogram = m.h
	out.Label = m.labels
	return nil
}

// nativeSpans encodes native bucket counts as Prometheus does: spans of
// consecutive bucket indexes (the first offset from index 0, the others from
// the end of the previous span) and each bucket's count as the difference
// from the previous bucket's.
func nativeSpans(buckets map[int32]uint64) ([]*dto.BucketSpan, []int64) {
	keys := make([]int32, 0, len(buckets))
	for k, n := range buckets {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var spans []*dto.BucketSpan
	var deltas []int64
	var prevKey int32
	var prevCount int64
	for i, k := range keys {
		switch {
		case i == 0:
			spans = append(spans, &dto.BucketSpan{Offset: new(k), Length: new(uint32(1))})
		case k == prevKey+1:
			*spans[len(spans)-1].Length++
		default:
			spans = append(spans, &dto.BucketSpan{Offset: new(k - prevKey - 1), Length: new(uint32(1))})
		}
		n := int64(buckets[k])
		deltas = append(deltas, n-prevCount)
		prevKey, prevCount = k, n
	}
	return spans, deltas
}
