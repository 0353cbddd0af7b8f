package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/demo"
	"github.com/callwatch/callwatch/notify"
	"github.com/callwatch/callwatch/storage/chstore"
	"github.com/callwatch/callwatch/web"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	configFile := configFileFlag(fs, "")
	listen := fs.String("web.listen-address", "127.0.0.1:9466", "address the HTTP API and /metrics listen on")
	externalURL := fs.String("web.external-url", "", "URL under which callwatch is reachable, for links in alerts")
	logLevel := logLevelFlag(fs)
	demoTraffic := fs.Bool("demo", false, "also write demo traffic (several tenants, scripted incidents) into the events table")
	demoRate := fs.Float64("demo.rate", demo.DefaultRate, "demo calls per second, mean over a day (see callwatch demo --rate)")
	webConfig := fs.String("web.config.file", "", "TLS and basic-auth configuration of the HTTP server (Prometheus' exporter-toolkit web config format)")
	corsPattern := fs.String("web.cors.origin", ".*", "regex of the origins whose scripts may read the query API (CORS), fully anchored, as Prometheus' flag")
	allowOpenWrites := fs.Bool("web.allow-unauthenticated-writes", false,
		"listen beyond loopback without web.admin_token: anyone who reaches the address may then reload rules and acknowledge, resolve and silence alerts")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	logger, cfg, err := loggerAndConfig(*logLevel, *configFile, stderr)
	if err != nil {
		return err
	}
	corsOrigin, err := web.CORSOrigin(*corsPattern)
	if err != nil {
		return usageError{"--web.cors.origin: " + err.Error() + `: write a regular expression such as https://grafana\.example\.com`}
	}
	var extURL *url.URL
	var trustedOrigins []string
	if *externalURL != "" {
		if extURL, err = url.Parse(*externalURL); err != nil {
			return usageError{"--web.external-url: " + err.Error()}
		}
		trustedOrigins = []string{*externalURL}
	}
	if token := string(cfg.Web.AdminToken); token != "" && strings.TrimSpace(token) == "" {
		logger.Warn("web.admin_token is blank, which counts as no token")
	}
	if web.WritesExposed(*listen, string(cfg.Web.AdminToken)) {
		if !*allowOpenWrites {
			return usageError{"--web.listen-address " + *listen + " is reachable from other hosts and web.admin_token is not set (or blank): " +
				"anyone reaching it could reload rules and acknowledge, resolve and silence alerts. Set web.admin_token " +
				"(admin_token: ${CALLWATCH_ADMIN_TOKEN}), listen on 127.0.0.1, or pass --web.allow-unauthenticated-writes"}
		}
		logger.Warn("listening beyond loopback without an admin token: anyone who reaches this address can reload rules and acknowledge, resolve and silence alerts",
			"address", *listen)
	}

	// Listening comes first: without --web.external-url, the address
	// listened on is the URL in alerts' links (their generatorURL).
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	if extURL == nil {
		extURL = listenURL(ln.Addr())
	}

	conn, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	cols, err := eventsColumns(ctx, cfg, conn)
	if err != nil {
		return err
	}
	distributed, err := eventsDistributed(ctx, cfg, conn)
	if err != nil {
		return err
	}
	src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: cfg.ClickHouse.EventsTable, Schema: cfg.Schema.DSL(), Columns: cols, Distributed: distributed,
		QueryTimeout: cfg.ClickHouse.QueryTimeout.D(), MaxGroups: cfg.Limits.MaxSeriesPerRule, Incremental: incremental(cfg)})
	if err != nil {
		return err
	}
	// Ad-hoc queries never touch the rules' incremental state or their
	// connections: a source with no state and a pool of its own.
	queryConn, closeQueryConn, err := openQueryStore(ctx, cfg, conn)
	if err != nil {
		return err
	}
	defer closeQueryConn()
	querySrc, err := clickhouse.New(clickhouse.Options{Conn: queryConn, Table: cfg.ClickHouse.EventsTable, Schema: cfg.Schema.DSL(), Columns: cols, Distributed: distributed,
		QueryTimeout: cfg.Limits.QueryTimeout.D(), MaxGroups: cfg.Limits.MaxSeriesPerRule})
	if err != nil {
		return err
	}
	tables := ownTables{logger: logger, cluster: cfg.ClickHouse.Cluster}
	audit, err := chstore.NewAuditStore(conn, cfg.ClickHouse.AuditTable)
	if err = tables.migrate(ctx, audit, err); err != nil {
		return err
	}
	// The history API and the status page read the audit trail on the
	// ad-hoc queries' connections, not the rules'.
	auditReads, err := chstore.NewAuditStore(queryConn, cfg.ClickHouse.AuditTable)
	if err = tables.prepare(auditReads, err); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	querier := engine.NewQuerier(engine.QuerierOptions{Source: src, Logger: logger, MaxSeries: cfg.Limits.MaxSeriesPerRule})
	schema := cfg.Schema.DSL()

	silences := engine.NewSilences(engine.SilencesOptions{Audit: audit})
	restoreSilences := func(ctx context.Context) {
		if recs, err := audit.History(ctx, engine.AuditQuery{From: time.Now().Add(-90 * 24 * time.Hour),
			Kinds: []engine.AuditKind{engine.AuditSilence, engine.AuditUnsilence}, Limit: 100000}); err != nil {
			logger.Error("restoring silences from the audit trail failed", "err", err)
		} else {
			silences.Restore(recs, time.Now())
		}
	}
	restoreSilences(ctx)
	var elector *engine.Elector
	var sender func() bool
	if cfg.HA.Enabled {
		lease, err := chstore.NewLeaseStore(conn, cfg.HA.LeaseTable)
		if err = tables.migrate(ctx, lease, err); err != nil {
			return err
		}
		senderGauge := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "callwatch", Name: "ha_sender",
			Help: "1 when this replica is the elected sender to direct channels."})
		reg.MustRegister(senderGauge)
		elector = engine.NewElector(engine.ElectorOptions{Store: lease, Replica: replicaName(cfg),
			Interval: cfg.HA.Heartbeat.D(), TTL: cfg.HA.TTL.D(), Logger: logger,
			OnChange: func(leader bool) { senderGauge.Set(map[bool]float64{true: 1}[leader]) }})
		sender = elector.Leader
		if cfg.HA.ShareGroups {
			// Each group's owner evaluates it and sends its alerts to
			// every channel: no other replica has them to send.
			sender = nil
		}
	}
	dispatcher, err := newDispatcher(cfg, stdout, logger, extURL, reg, audit, silences, sender)
	if err != nil {
		return err
	}
	seed := func(ctx context.Context) {
		if states, err := audit.LastSent(ctx, time.Now().Add(-7*24*time.Hour)); err != nil {
			logger.Error("reading what channels were last told from the audit trail failed; notifications may repeat", "err", err)
		} else {
			dispatcher.Seed(states)
		}
	}
	seed(ctx)
	if elector != nil {
		// A replica taking over as sender first reads what the previous
		// one sent, so it neither repeats that nor loses what was due.
		elector.SetOnElected(func(ctx context.Context) {
			restoreSilences(ctx)
			seed(ctx)
		})
		elector.Start(ctx)
	}
	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	dispatchDone := make(chan struct{})
	go func() {
		dispatcher.Run(dispatchCtx, cfg.Notification.DrainTimeout.D())
		close(dispatchDone)
	}()
	defer func() {
		stopDispatch()
		<-dispatchDone
	}()

	var owns func(string) bool
	if elector != nil && cfg.HA.ShareGroups {
		owns = elector.Owns
	}
	groupOpts := engine.GroupOptions{
		Owns:           owns,
		Query:          querier.QueryWith,
		Batch:          querier.Batch,
		Coalescer:      engine.NewCoalescer(querier),
		Notifier:       dispatcher,
		Schema:         schema,
		Limits:         cfg.Limits.DSL(),
		ExternalURL:    extURL,
		ExternalLabels: cfg.ExternalLabels,
		ResendDelay:    cfg.Notification.ResendDelay.D(),
		Logger:         logger,
		Metrics:        engine.NewMetrics(reg),
		Audit:          audit,
		// Evidence reads on the ad-hoc queries' connections: a slow one
		// never holds a rule's.
		Evidence:        querySrc,
		EvidenceTimeout: cfg.Notification.EvidenceTimeout.D(),
	}
	ping := pinger(cfg, conn, logger)
	mgr := engine.NewManager(engine.ManagerOptions{
		GroupOptions: groupOpts,
		RuleFiles:    ruleGlobs(*configFile, cfg),
		Channels:     cfg.ChannelNames(),
		AuditReader:  audit,
		Builtin:      []*engine.Group{engine.DatasourceDownGroup(ping, cfg.ClickHouse.HealthInterval.D(), cfg.ClickHouse.DownAfter.D(), groupOpts)},
		Replica:      replicaName(cfg),
		OnTakeOver:   seed,
	})
	if cfg.HA.Enabled {
		go syncReplicas(ctx, cfg.HA.Heartbeat.D(), mgr, silences, audit, logger)
	}

	stopExporter, err := startExporter(ctx, cfg, cfg.Exporter, conn, cols, mgr, reg, logger)
	if err != nil {
		return err
	}
	defer stopExporter()

	// Ad-hoc queries read the rules' outputs (recording rules, ALERTS) by name.
	adhoc := engine.NewQuerier(engine.QuerierOptions{Source: querySrc, Series: engine.Outputs{Groups: mgr.Groups}, Logger: logger,
		MaxSeries: cfg.Limits.MaxSeriesPerRule, Timeout: cfg.Limits.QueryTimeout.D()})
	var ready atomic.Bool
	var owner func(string) string
	if owns != nil {
		owner = elector.Owner
	}
	handler := web.Handler(web.Options{
		Rules:  mgr,
		Owner:  owner,
		Schema: schema,
		Limits: cfg.Limits.DSL(),
		Query: func(ctx context.Context, e *dsl.Expr, ts time.Time) (engine.Result, error) {
			return adhoc.Query(ctx, e, ts)
		},
		QueryRange:           adhoc.QueryRange,
		Registerer:           reg,
		CORSOrigin:           corsOrigin,
		QueryTimeout:         cfg.Limits.QueryTimeout.D(),
		MaxConcurrentQueries: cfg.Limits.MaxConcurrentQueries,
		Reload:               mgr.Load,
		ForceReload:          func(ctx context.Context) error { return mgr.Reload(ctx, engine.ReloadOptions{Force: true}) },
		Ready:                ready.Load,
		Gatherer:             reg,
		Logger:               logger,
		Actions:              mgr,
		Silences:             silences,
		History:              auditReads,
		AdminToken:           string(cfg.Web.AdminToken),
		TrustedOrigins:       trustedOrigins,
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		flags := &toolkitweb.FlagConfig{WebListenAddresses: &[]string{*listen}, WebConfigFile: webConfig}
		if err := toolkitweb.Serve(ln, srv, flags, logger); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "err", err)
		}
	}()
	logger.Info("callwatch listening", "address", "http://"+ln.Addr().String(), "rule_files", cfg.RuleFiles)
	base := "http://" + ln.Addr().String()
	storage := "ClickHouse " + config.RedactDSN(cfg.ClickHouse.DSN)
	if cfg.ClickHouse.Embedded.Path != "" {
		storage = "embedded ClickHouse in " + cfg.ClickHouse.Embedded.Path
	}
	fmt.Fprintf(stdout, "\ncallwatch is running on %s\n  status page   %s/\n  alerts        %s/api/v1/alerts\n  rules         %s/api/v1/rules\n  audit trail   %s/api/v1/alerts/history\n  metrics       %s/metrics\nNotifications are printed below. Ctrl-C stops.\n\n",
		storage, base, base, base, base, base)
	if *demoTraffic {
		go func() {
			if err := runDemoTraffic(ctx, conn, cfg, demoOptions{Rate: *demoRate, Seed: 1, Backfill: 15 * time.Minute}, logger); err != nil {
				logger.Error("demo traffic stopped", "err", err)
			}
		}()
	}

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
				// SIGHUP never forces: a reload refused because it would
				// remove every rule or empty a rule file says so here, and
				// POST /-/reload?force=true applies it.
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

// listenURL is callwatch's URL when --web.external-url is not given: the
// address it listens on, with the host name in place of an unspecified IP
// (0.0.0.0, ::), as Prometheus does.
func listenURL(addr net.Addr) *url.URL {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return &url.URL{Scheme: "http", Host: addr.String(), Path: "/"}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/"}
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

// replicaName is this instance's name in audit rows and the election.
func replicaName(cfg *config.Config) string {
	if cfg.HA.Replica != "" {
		return cfg.HA.Replica
	}
	host, _ := os.Hostname()
	return host
}

// newDispatcher builds the notification channels. Without any configured
// channel, alerts go to a console channel on stdout.
func newDispatcher(cfg *config.Config, stdout io.Writer, logger *slog.Logger, extURL *url.URL, reg prometheus.Registerer,
	audit engine.Auditor, silences *engine.Silences, sender func() bool) (*notify.Dispatcher, error) {
	notifiers, defaults := cfg.Notifiers, cfg.DefaultNotify
	if len(notifiers) == 0 {
		notifiers = []config.Notifier{{ChannelConfig: notify.ChannelConfig{Name: "console", Type: "log"}}}
		defaults = []string{"console"}
	}
	var channels []*notify.Channel
	for _, n := range notifiers {
		sender, err := notify.New(n.ChannelConfig, notify.Options{Out: stdout, Logger: logger, ExternalURL: extURL})
		if err != nil {
			return nil, err
		}
		channels = append(channels, &notify.Channel{Name: n.Name, Sender: sender, Direct: n.Type != "alertmanager", Local: n.Type == "log",
			RatePerMinute: n.RatePerMinute, RepeatInterval: n.RepeatInterval.D()})
	}
	return notify.NewDispatcher(notify.DispatcherOptions{
		Channels: channels, Default: defaults, Audit: audit, Silences: silences,
		QueueSize: cfg.Notification.QueueSize, MaxAttempts: cfg.Notification.MaxAttempts,
		ExternalURL: extURL, Registerer: reg, Logger: logger, Replica: replicaName(cfg), Sender: sender,
	}), nil
}

// syncReplicas shares the operators' actions between replicas through the
// audit trail, every heartbeat: an acknowledgement, a manual resolve or a
// silence made on one replica takes effect on all, without a restart.
func syncReplicas(ctx context.Context, every time.Duration, mgr *engine.Manager, silences *engine.Silences, audit engine.AuditReader, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	since := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if _, err := mgr.SyncActions(ctx); err != nil {
			logger.Warn("sharing acknowledgements and resolves between replicas failed; retrying", "err", err)
		}
		// Silences: their rows since the last read (and a minute before,
		// for rows that became visible late); applying one again is
		// harmless.
		recs, err := audit.History(ctx, engine.AuditQuery{From: since.Add(-time.Minute),
			Kinds: []engine.AuditKind{engine.AuditSilence, engine.AuditUnsilence}, Limit: 10000})
		if err != nil {
			logger.Warn("sharing silences between replicas failed; retrying", "err", err)
			continue
		}
		silences.Restore(recs, now)
		since = now
	}
}

// ownTables sets up the stores of serve's own tables (the audit trail, the
// lease): they log to serve's logger and, on a cluster, create their
// tables on every server of it.
type ownTables struct {
	logger  *slog.Logger
	cluster string
}

// ownTable is a store of one of serve's own tables.
type ownTable interface {
	SetLogger(*slog.Logger)
	SetCluster(cluster string) error
	Migrate(ctx context.Context) error
}

// prepare gives st serve's logger and cluster. err is that of st's
// constructor: when it is not nil, prepare returns it and leaves st alone.
func (o ownTables) prepare(st ownTable, err error) error {
	if err != nil {
		return err
	}
	st.SetLogger(o.logger)
	return st.SetCluster(o.cluster)
}

// migrate prepares st and creates or upgrades its table.
func (o ownTables) migrate(ctx context.Context, st ownTable, err error) error {
	if err := o.prepare(st, err); err != nil {
		return err
	}
	return st.Migrate(ctx)
}
