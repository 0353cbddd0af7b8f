package engine

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// QueryData is the `data` object of Prometheus' /api/v1/query response.
type QueryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// NewQueryData encodes r at ts in Prometheus' API shape:
// {"resultType":"vector","result":[{"metric":{...},"value":[ts,"v"]}]}
// or {"resultType":"scalar","result":[ts,"v"]}.
func NewQueryData(r Result, ts time.Time) QueryData {
	t := json.Number(strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', -1, 64))
	if r.IsScalar {
		b, _ := json.Marshal([]any{t, FormatValue(r.Scalar)})
		return QueryData{ResultType: "scalar", Result: b}
	}
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  []any             `json:"value"`
	}
	out := make([]sample, 0, len(r.Vector))
	for _, s := range r.Vector {
		out = append(out, sample{Metric: s.Labels.Map(), Value: []any{t, FormatValue(s.Value)}})
	}
	b, _ := json.Marshal(out)
	return QueryData{ResultType: "vector", Result: b}
}

// FormatValue formats a sample value as Prometheus' API does.
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// NewMatrixData encodes r in Prometheus' API shape of a range query:
// {"resultType":"matrix","result":[{"metric":{...},"values":[[ts,"v"],...]}]}.
func NewMatrixData(r RangeResult) QueryData {
	type series struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	out := make([]series, 0, len(r.Matrix))
	for _, s := range r.Matrix {
		vs := make([][2]any, len(s.Points))
		for i, p := range s.Points {
			vs[i] = [2]any{json.Number(strconv.FormatFloat(float64(p.T)/1000, 'f', -1, 64)), FormatValue(p.V)}
		}
		out = append(out, series{Metric: s.Labels.Map(), Values: vs})
	}
	b, _ := json.Marshal(out)
	return QueryData{ResultType: "matrix", Result: b}
}

// NewStringData encodes a string literal's value at ts in Prometheus' API
// shape: {"resultType":"string","result":[ts,"s"]}.
func NewStringData(s string, ts time.Time) QueryData {
	t := json.Number(strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', -1, 64))
	b, _ := json.Marshal([]any{t, s})
	return QueryData{ResultType: "string", Result: b}
}
