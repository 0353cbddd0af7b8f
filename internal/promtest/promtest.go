// Package promtest starts private Prometheus servers for tests, queries them
// through their HTTP API, and finds promtool.
//
// A server runs Debian's prometheus (2.42) with a generated prometheus.yml
// that scrapes the given targets, its TSDB in a temporary directory and its
// web API on 127.0.0.1 on a free port; it is killed when the test ends.
// Without the binary the test is skipped, or fails when the environment
// variable CI is "true".
//
//	p := promtest.Start(t, promtest.Options{Targets: []string{srv.Listener.Addr().String()}})
//	p.WaitFor(t, `up == 1`, func(v promtest.Vector) bool { return len(v) == 1 })
//	v := p.Query(t, `sum(callwatch_calls_total)`)
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
)

// InstallHint tells what to do when the binaries are missing.
const InstallHint = "Prometheus is not installed: `make test` installs it (apt-get install prometheus, which brings promtool)"

// ErrNotInstalled is returned by StartServer when no prometheus binary is
// found.
var ErrNotInstalled = errors.New(InstallHint) //nolint:staticcheck // ST1005: the hint is a sentence printed as is

// StartTimeout bounds how long a server may take to become ready.
const StartTimeout = 30 * time.Second

// Options configure a server.
type Options struct {
	// Targets are the host:port addresses scraped, as job "callwatch".
	Targets []string
	// MetricsPath is the path scraped (default /metrics).
	MetricsPath string
	// ScrapeInterval is the scrape and evaluation interval (default 1s).
	ScrapeInterval time.Duration
	// RuleFiles are rule files loaded by the server.
	RuleFiles []string
	// EnableFeatures are passed as --enable-feature, e.g. native-histograms.
	EnableFeatures []string
}

// Server is a running private Prometheus.
type Server struct {
	// URL is its base URL, http://127.0.0.1:PORT.
	URL string
	// Dir holds its configuration, TSDB and log.
	Dir string

	proc *proctest.Proc
}

// Start starts a server for one test and kills it when the test ends. When
// Prometheus is not installed it skips the test, or fails it when CI is
// "true".
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	return proctest.ForTest(t, ErrNotInstalled, func(dir string) (*Server, error) { return StartServer(dir, opts) })
}

// Promtool returns the path of promtool. When it is not installed it skips
// the test, or fails it when CI is "true".
func Promtool(t testing.TB) string {
	t.Helper()
	p, err := proctest.Binary(ErrNotInstalled, "promtool")
	if err != nil {
		proctest.SkipOrFatal(t, err, ErrNotInstalled)
	}
	return p
}

// StartServer starts a server whose files live in dir. The caller must
// Close it.
func StartServer(dir string, opts Options) (*Server, error) {
	bin, err := proctest.Binary(ErrNotInstalled, "prometheus")
	if err != nil {
		return nil, err
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.MetricsPath == "" {
		opts.MetricsPath = "/metrics"
	}
	return proctest.Retry(func() (*Server, error) { return start(bin, dir, opts) })
}

// Config returns the prometheus.yml of a server with opts.
func Config(opts Options) string {
	var b strings.Builder
	iv := opts.ScrapeInterval.String()
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", iv, iv, iv)
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(f))
		}
	}
	b.WriteString("scrape_configs:\n  - job_name: callwatch\n")
	fmt.Fprintf(&b, "    metrics_path: %s\n    static_configs:\n      - targets:\n", strconv.Quote(opts.MetricsPath))
	for _, t := range opts.Targets {
		fmt.Fprintf(&b, "          - %s\n", strconv.Quote(t))
	}
	return b.String()
}

func start(bin, base string, opts Options) (*Server, error) {
	port, err := proctest.FreePort()
	if err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	dir, config, err := proctest.ConfigDir(base, "prometheus-", "prometheus.yml", Config(opts))
	if err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{
		"--config.file=" + config,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=info",
	}
	for _, f := range opts.EnableFeatures {
		args = append(args, "--enable-feature="+f)
	}
	proc, err := proctest.Start(dir, filepath.Join(dir, "prometheus.log"), bin, args...)
	if err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	s := &Server{URL: "http://" + addr, Dir: dir, proc: proc}
	if err := proc.WaitReady(StartTimeout, proctest.HTTPReady(s.URL+"/-/ready")); err != nil {
		s.Close()
		return nil, fmt.Errorf("start prometheus (%s): %w\n%s", bin, err, s.LogTail())
	}
	return s, nil
}

// Close kills the server. It is safe to call more than once.
func (s *Server) Close() {
	// Its data is thrown away, so there is nothing to shut down gracefully.
	_ = s.proc.Kill()
}

// LogTail returns the end of the server's log, for messages.
func (s *Server) LogTail() string { return proctest.LogTail(filepath.Join(s.Dir, "prometheus.log")) }

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Vector is the result of an instant query.
type Vector []Sample

// Query evaluates expr at the current time and returns the vector (a scalar
// result is a one-sample vector without labels). It fails the test on
// error.
func (s *Server) Query(t testing.TB, expr string) Vector {
	t.Helper()
	v, err := s.query(expr)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// WaitFor polls expr until ok accepts its result or the deadline (30s)
// passes, and returns the last result; it fails the test at the deadline.
func (s *Server) WaitFor(t testing.TB, expr string, ok func(Vector) bool) Vector {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last Vector
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = s.query(expr)
		if lastErr == nil && ok(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: no acceptable result within 30s; last %v, error %v\n%s", expr, last, lastErr, s.LogTail())
	return nil
}

func (s *Server) query(expr string) (Vector, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/v1/query",
		strings.NewReader(url.Values{"query": {expr}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %s: decode %q: %w", expr, body, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, r.Error)
	}
	switch r.Data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &raw); err != nil {
			return nil, fmt.Errorf("query %s: decode vector: %w", expr, err)
		}
		v := make(Vector, 0, len(raw))
		for _, s := range raw {
			f, err := parseValue(s.Value[1])
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", expr, err)
			}
			v = append(v, Sample{Metric: s.Metric, Value: f})
		}
		return v, nil
	case "scalar":
		var raw [2]any
		if err := json.Unmarshal(r.Data.Result, &raw); err != nil {
			return nil, fmt.Errorf("query %s: decode scalar: %w", expr, err)
		}
		f, err := parseValue(raw[1])
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", expr, err)
		}
		return Vector{{Metric: map[string]string{}, Value: f}}, nil
	}
	return nil, fmt.Errorf("query %s: result type %q is not supported", expr, r.Data.ResultType)
}

func parseValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// Run runs promtool with args and stdin and returns its combined output and
// error.
func Run(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Promtool(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.CombinedOutput()
}
