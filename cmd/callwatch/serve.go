package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/web"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "configuration file (default: built-in defaults)")
	listen := fs.String("web.listen-address", "127.0.0.1:9466", "address the HTTP API and /metrics listen on")
	externalURL := fs.String("web.external-url", "", "URL under which callwatch is reachable, for links in alerts")
	logLevel := fs.String("log.level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{"--log.level: write debug, info, warn or error"}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := loadConfig(*configFile)
	if err != nil {
		return err
	}
	var extURL *url.URL
	if *externalURL != "" {
		if extURL, err = url.Parse(*externalURL); err != nil {
			return usageError{"--web.external-url: " + err.Error()}
		}
	}

	src, closeSrc, err := openClickHouseSource(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeSrc()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	querier := engine.NewQuerier(engine.QuerierOptions{Source: src, Logger: logger})
	schema := cfg.Schema.DSL()
	mgr := engine.NewManager(engine.ManagerOptions{
		GroupOptions: engine.GroupOptions{
			Query:       querier.QueryWith,
			Notifier:    consoleNotifier(stdout),
			Schema:      schema,
			ExternalURL: extURL,
			Logger:      logger,
			Metrics:     engine.NewMetrics(reg),
		},
		RuleFiles: ruleGlobs(*configFile, cfg),
		Channels:  cfg.ChannelNames(),
	})

	var ready atomic.Bool
	handler := web.Handler(web.Options{
		Rules:  mgr,
		Schema: schema,
		Query: func(ctx context.Context, e *dsl.Expr, ts time.Time) (engine.Result, error) {
			return querier.Query(ctx, e, ts)
		},
		Reload:   mgr.Load,
		Ready:    ready.Load,
		Gatherer: reg,
		Logger:   logger,
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "err", err)
		}
	}()
	logger.Info("callwatch listening", "address", "http://"+ln.Addr().String(), "rule_files", cfg.RuleFiles)

	if err := mgr.Load(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("load rules: %w", err)
	}
	ready.Store(true)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := mgr.Load(ctx); err != nil {
					logger.Error("reloading rules failed; the previous rules keep running", "err", err)
				} else {
					logger.Info("rules reloaded on SIGHUP")
				}
			}
		}
	}()
	mgr.Run(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// ruleGlobs resolves relative rule_files against the config file's directory.
func ruleGlobs(configFile string, cfg *config.Config) []string {
	dir := "."
	if configFile != "" {
		dir = filepath.Dir(configFile)
	}
	out := make([]string, 0, len(cfg.RuleFiles))
	for _, g := range cfg.RuleFiles {
		if !filepath.IsAbs(g) {
			g = filepath.Join(dir, g)
		}
		out = append(out, g)
	}
	return out
}

// consoleNotifier prints notifications, one line per alert.
func consoleNotifier(w io.Writer) engine.Notifier {
	return engine.NotifierFunc(func(_ context.Context, n engine.Notification) {
		for _, a := range n.Alerts {
			state := a.State.String()
			if !a.ResolvedAt.IsZero() && a.State == engine.StateInactive {
				state = "resolved"
			}
			fmt.Fprintf(w, "%s [%s] %s %s value=%s\n", n.Time.UTC().Format(time.RFC3339), state, n.Rule.Name(), a.Labels, engine.FormatValue(a.Value))
		}
	})
}
