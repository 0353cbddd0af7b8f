package web

import (
	"net/url"
	"slices"
	"testing"

	"github.com/callwatch/callwatch/internal/promtest"
)

// TestQueryAPIMatchesPrometheus sends the same requests to callwatch and to
// a real Prometheus 2.42 and compares what strict clients read: the status
// code, the error type, the data of answers that do not depend on stored
// series, the error text where callwatch copies Prometheus', and the CORS
// headers.
func TestQueryAPIMatchesPrometheus(t *testing.T) {
	prom := promtest.Start(t, promtest.Options{Targets: []string{"127.0.0.1:1"}})
	cw := newPromFixture(t)
	grafana := map[string]string{"Origin": "https://grafana.example"}
	cases := []struct {
		name, method, path string
		form               url.Values
		header             map[string]string
		sameError          bool // the error text is Prometheus' too
	}{
		{"Grafana's health check", "POST", "/api/v1/query", url.Values{"query": {"1+1"}, "time": {"4"}}, nil, false},
		{"a scalar at a fractional time", "GET", "/api/v1/query?query=time()&time=100.5", nil, nil, false},
		{"a string literal", "GET", "/api/v1/query?query=%22abc%22&time=100", nil, nil, false},
		// ("abc") is left out: 2.42 fails it with an internal error
		// (StepInvariantExpr); callwatch answers the string, as later
		// releases do.
		{"a range query of a scalar", "POST", "/api/v1/query_range", url.Values{"query": {"1+1"}, "start": {"100"}, "end": {"102.5"}, "step": {"1"}}, nil, false},
		{"a range query with RFC 3339 times and a duration step", "GET", "/api/v1/query_range?query=time()&start=2020-01-01T00:00:00Z&end=2020-01-01T00:02:00Z&step=1m", nil, nil, false},
		{"a range query with a fractional step", "GET", "/api/v1/query_range?query=time()*2&start=10&end=11&step=0.25", nil, nil, false},
		{"a missing query", "GET", "/api/v1/query", nil, nil, false},
		{"a bad time", "GET", "/api/v1/query?query=1&time=abc", nil, nil, false},
		{"a bad timeout", "GET", "/api/v1/query?query=1&timeout=abc", nil, nil, false},
		{"end before start", "GET", "/api/v1/query_range?query=1&start=1&end=0&step=1", nil, nil, true},
		{"a zero step", "GET", "/api/v1/query_range?query=1&start=0&end=10&step=0", nil, nil, true},
		{"a missing step", "GET", "/api/v1/query_range?query=1&start=0&end=10", nil, nil, false},
		{"too many points", "GET", "/api/v1/query_range?query=1&start=0&end=100000&step=1", nil, nil, true},
		{"a string in a range query", "GET", "/api/v1/query_range?query=%22a%22&start=0&end=10&step=1", nil, nil, true},
		{"series without match[]", "GET", "/api/v1/series", nil, nil, true},
		{"an invalid label name", "GET", "/api/v1/label/a%20b/values", nil, nil, true},
		{"an empty match[]", "GET", "/api/v1/label/job/values?match[]=%7B%7D", nil, nil, false},
		{"a cross-origin GET", "GET", "/api/v1/query?query=1&time=7", nil, grafana, false},
		{"a cross-origin form POST", "POST", "/api/v1/query", url.Values{"query": {"2*3"}, "time": {"7"}}, grafana, false},
		{"a preflight", "OPTIONS", "/api/v1/query_range", nil, grafana, false},
		{"a preflight without Origin", "OPTIONS", "/api/v1/query", nil, nil, false},
	}
	promF := &promFixture{srv: nil}
	for _, tc := range cases {
		t.Run(tc.name+" is answered as Prometheus answers it", func(t *testing.T) {
			code, h, out := cw.call(t, tc.method, tc.path, tc.form, tc.header)
			pcode, ph, pout := promF.callURL(t, prom.URL, tc.method, tc.path, tc.form, tc.header)
			if code != pcode {
				t.Fatalf("code %d, Prometheus %d (%v / %v)", code, pcode, out, pout)
			}
			// Vary: Origin is set on every answer, as later Prometheus releases do
			// (2.42 sets it only when the request has an Origin), so
			// that a cache never serves one origin's answer to another.
			for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Vary"} {
				if k == "Vary" && tc.header["Origin"] == "" {
					continue
				}
				if h.Get(k) != ph.Get(k) {
					t.Errorf("%s: %q, Prometheus %q", k, h.Get(k), ph.Get(k))
				}
			}
			if out["status"] != pout["status"] || out["errorType"] != pout["errorType"] {
				t.Fatalf("status %v %v, Prometheus %v %v (%v / %v)", out["status"], out["errorType"], pout["status"], pout["errorType"], out, pout)
			}
			if out["status"] == "success" && dataJSON(out) != dataJSON(pout) {
				t.Fatalf("data %s\nPrometheus %s", dataJSON(out), dataJSON(pout))
			}
			if tc.sameError && out["error"] != pout["error"] {
				t.Fatalf("error %q\nPrometheus %q", out["error"], pout["error"])
			}
		})
	}
	t.Run("build info has Prometheus' fields and no feature list", func(t *testing.T) {
		_, _, out := cw.call(t, "GET", "/api/v1/status/buildinfo", nil, nil)
		_, _, pout := promF.callURL(t, prom.URL, "GET", "/api/v1/status/buildinfo", nil, nil)
		var keys, pkeys []string
		for k := range out["data"].(map[string]any) {
			keys = append(keys, k)
		}
		for k := range pout["data"].(map[string]any) {
			pkeys = append(pkeys, k)
		}
		slices.Sort(keys)
		slices.Sort(pkeys)
		if !slices.Equal(keys, pkeys) || slices.Contains(keys, "features") {
			t.Fatalf("keys %v, Prometheus %v", keys, pkeys)
		}
	})
}
