package exporter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/promtest"
)

const deployDir = "../deploy"

func TestPromtoolFindsNothingWrongWithTheExposition(t *testing.T) {
	e, _ := goldenExporter(t)
	checkMetrics(t, exposition(t, e), e.opts.Rules)
}

func TestPrometheusDeployFilesPassPromtool(t *testing.T) {
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{
		{"check", "config", filepath.Join(dir, "prometheus.yml")},
		{"check", "rules", filepath.Join(dir, "callwatch-alerts.yml")},
		{"test", "rules", filepath.Join(dir, "callwatch-alerts_test.yml")},
	} {
		t.Run("promtool "+strings.Join(args, " "), func(t *testing.T) {
			out, err := promtest.Run(t, nil, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// knownMetrics are the metric names callwatch serves: the exporter's, the
// rule engine's and the notifiers', with the series names of histograms.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	e := newTestExporter(t, &fakeConn{}, "calls", config.Exporter{}, nil)
	rec := &recorder{}
	engine.NewMetrics(rec)
	collectors := append([]prometheus.Collector{e}, rec.collectors...)
	names := map[string]bool{"ALERTS": true, "ALERTS_FOR_STATE": true, "up": true}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range collectors {
		ch := make(chan *prometheus.Desc, 100)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	// The notifiers' metrics (notify's dispatcher registers them).
	for _, n := range []string{"callwatch_notifications_sent_total", "callwatch_notifications_failed_total",
		"callwatch_notifications_dropped_total", "callwatch_notifications_skipped_total", "callwatch_notification_queue_length"} {
		names[n] = true
	}
	return names
}

// recorder is a Registerer that keeps what is registered.
type recorder struct{ collectors []prometheus.Collector }

var _ prometheus.Registerer = (*recorder)(nil)

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}

func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// readDeployFile decodes the file at path (slash-separated, below
// deployDir) into v with unmarshal.
func readDeployFile(t *testing.T, path string, unmarshal func([]byte, any) error, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// checkExpr parses a PromQL expression and checks that it reads only
// metrics callwatch serves.
func checkExpr(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && !known[vs.Name] {
			t.Errorf("%s: %q reads %s, which callwatch does not serve", where, expr, vs.Name)
		}
		return nil
	})
}

func TestAlertRulesReadMetricsCallwatchServes(t *testing.T) {
	known := knownMetrics(t)
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readDeployFile(t, "prometheus/callwatch-alerts.yml", yaml.Unmarshal, &f)
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			checkExpr(t, "alert "+r.Alert, r.Expr, known)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no alerting rules")
	}
}

func TestGrafanaDashboardQueriesParseAndReadMetricsCallwatchServes(t *testing.T) {
	known := knownMetrics(t)
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	readDeployFile(t, "grafana/callwatch.json", json.Unmarshal, &dash)
	if dash.UID == "" || dash.Title == "" {
		t.Fatal("the dashboard has no uid or title")
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	// Grafana's variables, replaced by what Grafana would send.
	replacer := strings.NewReplacer("$__rate_interval", "1m", "$__range", "6h", "$__interval", "15s")
	varRef := regexp.MustCompile(`\$([a-z_]+)`)
	read := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			expr := replacer.Replace(tg.Expr)
			for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q: $%s is not a dashboard variable", p.Title, m[1])
				}
			}
			expr = varRef.ReplaceAllString(expr, ".*")
			checkExpr(t, "panel "+p.Title, expr, known)
			e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
			if err != nil {
				continue
			}
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					read[vs.Name] = true
				}
				return nil
			})
		}
	}
	// The dashboard covers what the issue asks for.
	var missing []string
	for _, m := range []string{
		"callwatch_calls_total", "callwatch_call_errors_total", "callwatch_input_tokens_total", "callwatch_output_tokens_total",
		"callwatch_cost_total", "callwatch_call_duration_seconds_bucket", "ALERTS", "callwatch_datasource_up",
		"callwatch_rule_evaluation_failures_total", "callwatch_notifications_failed_total", "callwatch_notification_queue_length",
	} {
		if !read[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no panel reads %v", missing)
	}
}
