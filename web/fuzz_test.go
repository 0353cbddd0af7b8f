package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzAPI sends arbitrary methods, paths, query strings and bodies to the
// HTTP API: no input may panic the handler or make it fail with a 5xx, and
// every /api/ answer is JSON. `make fuzz` runs it longer; `go test` runs
// the seeds.
func FuzzAPI(f *testing.F) {
	for _, seed := range []struct{ method, target, body string }{
		{"GET", "/api/v1/query?query=p95(latency_ms[5m])", ""},
		{"GET", "/api/v1/query?query=sum by (tenant_id) (count_over_time(events{status=~\"err.*\"}[5m]))&time=1764000060", ""},
		{"GET", "/api/v1/query?query=%ff%fe", ""},
		{"GET", "/api/v1/query?query=1&time=yesterday", ""},
		{"POST", "/api/v1/query", "query=rate(events[1m])"},
		{"GET", "/api/v1/rules?type=alert&rule_name[]=TenantErrors", ""},
		{"GET", "/api/v1/rules/evaluations?rule=TenantErrors&limit=-1", ""},
		{"GET", "/api/v1/alerts", ""},
		{"GET", "/api/v1/alerts/history?from=bad&to=1e99&rule=x&state=firing&label=tenant_id%3D%22acme%22", ""},
		{"POST", "/api/v1/alerts/0123456789abcdef/ack", `{"by":"ops","comment":"on it"}`},
		{"POST", "/api/v1/alerts/%00/resolve", `{`},
		{"POST", "/api/v1/silences", `{"matchers":"{tenant_id=\"acme\"}","ends_at":"2026-01-01T00:00:00Z"}`},
		{"DELETE", "/api/v1/silences/does-not-exist", ""},
		{"POST", "/-/reload", ""},
		{"GET", "/-/healthy", ""},
		{"PUT", "/api/v1/query?query=up", ""},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	srv, _ := setup(f)
	h := srv.Config.Handler
	f.Fuzz(func(t *testing.T, method, target, body string) {
		switch method {
		case "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH":
		default:
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		u.Scheme, u.Host = "http", "127.0.0.1"
		req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
		if err != nil {
			return
		}
		req.RemoteAddr = "127.0.0.1:1234"
		if method == "POST" && !strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s (body %q): %d %s", method, target, body, rec.Code, rec.Body)
		}
		if strings.HasPrefix(u.Path, "/api/") && rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound && method != "HEAD" {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %s: %d, not JSON: %q", method, target, rec.Code, rec.Body)
			}
		}
	})
}
