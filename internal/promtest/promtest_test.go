package promtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServerScrapesTargetsAndAnswersQueries(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE promtest_answer gauge\npromtest_answer{kind=\"test\"} 42\n")
	}))
	defer target.Close()
	p := Start(t, Options{Targets: []string{strings.TrimPrefix(target.URL, "http://")}})
	v := p.WaitFor(t, `promtest_answer`, func(v Vector) bool { return len(v) == 1 })
	if v[0].Value != 42 || v[0].Metric["kind"] != "test" || v[0].Metric["job"] != "callwatch" {
		t.Fatalf("promtest_answer = %+v, want 42 with kind=test, job=callwatch", v[0])
	}
	if s := p.Query(t, `scalar(promtest_answer) * 2`); len(s) != 1 || s[0].Value != 84 {
		t.Fatalf("scalar query = %+v, want 84", s)
	}
}

func TestConfigIsValidForPromtool(t *testing.T) {
	cfg := Config(Options{Targets: []string{"127.0.0.1:9466"}, ScrapeInterval: 1e9, MetricsPath: "/metrics"})
	out, err := Run(t, []byte(cfg), "check", "config", "/dev/stdin")
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s\n%s", err, out, cfg)
	}
}

func TestAQueryErrorIsReported(t *testing.T) {
	p := Start(t, Options{})
	if _, err := p.query(`sum(`); err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("query error = %v, want a parse error", err)
	}
}
