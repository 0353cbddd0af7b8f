// The exporter's /metrics, scraped as Prometheus does.

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/exporter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ruleGroups serves the bench's groups to the exporter (serve passes its
// rule manager).
type ruleGroups []*engine.Group

func (r ruleGroups) Groups() []*engine.Group { return r }

var _ exporter.Rules = ruleGroups(nil)

// scrape runs the exporter as serve wires it (registry with the Go and
// process collectors, rule metrics, recording rules and ALERTS), serves the
// registry with promhttp on a local port and times GET /metrics.
func scrape(ctx context.Context, conn clickhouse.Conn, reg *prometheus.Registry, groups []*engine.Group, o options, rep *report, log *slog.Logger) error {
	now := benchNow.Add(time.Duration(o.reps+1)*time.Minute + 10*time.Second) // after the steady minutes and the warm-up
	e, err := exporter.New(exporter.Options{
		Config:  config.Exporter{LabelLimits: map[string]int{"tenant_id": o.tenantLimit}},
		Conn:    conn,
		Table:   table,
		Schema:  dsl.DefaultSchema(),
		Columns: clickhouse.EventsColumns(dsl.DefaultSchema()),
		Rules:   ruleGroups(groups),
		Start:   now.Add(-o.exporterAge),
		Now:     func() time.Time { return now },
	})
	if err != nil {
		return err
	}
	if err := e.Register(reg); err != nil {
		return err
	}
	log.Info("exporter: first update", "counting", o.exporterAge)
	start := time.Now()
	if err := e.Update(ctx, now); err != nil {
		return fmt.Errorf("exporter update: %w", err)
	}
	rep.exporterFirst = time.Since(start)
	start = time.Now()
	if err := e.Update(ctx, now.Add(15*time.Second)); err != nil {
		return fmt.Errorf("exporter update: %w", err)
	}
	rep.exporterNext = time.Since(start)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/metrics"
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(gzip bool) (string, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", 0, err
		}
		if !gzip {
			req.Header.Set("Accept-Encoding", "identity")
		}
		// Prometheus' default scrape Accept header (text formats; the
		// Go client adds Accept-Encoding: gzip, as Prometheus does).
		req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		return string(body), d, err
	}
	body, _, err := get(true) // warm-up, and the series count
	if err != nil {
		return err
	}
	rep.scrapeBytes = len(body)
	if o.dumpMetrics != "" {
		if err := os.WriteFile(o.dumpMetrics, []byte(body), 0o644); err != nil {
			return err
		}
	}
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			rep.series++
		}
	}
	log.Info("scraping /metrics", "series", rep.series, "bytes", rep.scrapeBytes, "times", o.scrapes)
	durs := make([]time.Duration, 0, o.scrapes)
	cpu := processCPU()
	for range o.scrapes {
		_, d, err := get(true)
		if err != nil {
			return err
		}
		durs = append(durs, d)
	}
	rep.scrapeCPU = (processCPU() - cpu) / float64(o.scrapes)
	rep.scrapeP50, rep.scrapeP99 = percentile(durs, 0.5), percentile(durs, 0.99)
	// The same without gzip, to tell encoding from compression.
	durs = durs[:0]
	for range max(o.scrapes/4, 1) {
		_, d, err := get(false)
		if err != nil {
			return err
		}
		durs = append(durs, d)
	}
	rep.plainP50, rep.plainP99 = percentile(durs, 0.5), percentile(durs, 0.99)
	return nil
}
