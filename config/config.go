// Package config reads callwatch's configuration file: strict YAML (unknown
// keys are errors), defaults applied in one place, Validate without I/O, and
// secrets redacted whenever the configuration is printed or served.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/notify"
)

// Config is the whole configuration file.
type Config struct {
	// ClickHouse names the database holding the events.
	ClickHouse ClickHouse `yaml:"clickhouse"`
	// Schema maps the events table's columns; omitted means the baseline table.
	Schema Schema `yaml:"schema"`
	// RuleFiles are globs of rule files, relative to the config file's directory.
	RuleFiles []string `yaml:"rule_files"`
	// Notifiers are the notification channels rules route to by name.
	Notifiers []Notifier `yaml:"notifiers"`
	// DefaultNotify are the channels of rules without notify: (default: all
	// log channels, or none).
	DefaultNotify []string `yaml:"default_notify"`
	// Notification tunes delivery.
	Notification Notification `yaml:"notification"`
	// ExternalLabels are added to every alert (e.g. the cluster), as in Prometheus.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// Exporter configures the call-event metrics on /metrics.
	Exporter Exporter `yaml:"exporter"`
	// Web configures the HTTP API.
	Web Web `yaml:"web"`
	// Limits guard ClickHouse against expressions that would scan too much.
	Limits Limits `yaml:"limits"`
	// HA elects one sender among replicas for direct channels.
	HA HA `yaml:"ha"`
}

// HA configures sender election between replicas that share a ClickHouse:
// only the elected replica sends to direct channels (WeCom, webhook, …),
// so two replicas do not message them twice; every replica still
// evaluates, exports and sends to Alertmanager.
type HA struct {
	// Enabled turns the election on (default false: this replica sends).
	Enabled bool `yaml:"enabled"`
	// Replica names this instance (default: the host name); replicas must
	// have different names. It is also written in audit rows.
	Replica string `yaml:"replica"`
	// LeaseTable holds the heartbeats (default callwatch_replicas); created
	// at start when missing.
	LeaseTable string `yaml:"lease_table"`
	// Heartbeat is the time between heartbeats (default 5s); TTL how long a
	// silent replica still counts as alive (default 15s): the longest a
	// takeover takes.
	Heartbeat dsl.Duration `yaml:"heartbeat"`
	TTL       dsl.Duration `yaml:"ttl"`
	// ShareGroups divides the rule groups between the live replicas
	// (default false: every replica evaluates every group): each group
	// is evaluated, and its alerts sent to every channel, by one replica,
	// chosen by a hash of the group's name over the live set; a dead
	// replica's groups move within TTL.
	ShareGroups bool `yaml:"share_groups"`
}

// Web configures the HTTP API.
type Web struct {
	// AdminToken, when set, is required by the endpoints that change state
	// (reload, ack, resolve, silences) as "Authorization: Bearer <token>"
	// or "X-Callwatch-Admin-Token: <token>" (for when basic auth from
	// --web.config.file takes Authorization), and to sign in on the status
	// page. Give it as ${ENV_VAR} to keep it out of the file. A blank value
	// counts as none, and without one `serve` refuses to listen beyond
	// loopback unless --web.allow-unauthenticated-writes is given.
	AdminToken Secret `yaml:"admin_token"`
}

// Limits guard the data source.
type Limits struct {
	// MaxWindow is the longest range (plus offset) an expression may use (default 31d).
	MaxWindow dsl.Duration `yaml:"max_window"`
	// MaxSeriesPerRule caps the groups one range function may return
	// (default 10000); ClickHouse stops grouping soon after it.
	MaxSeriesPerRule int `yaml:"max_series_per_rule"`
	// QueryTimeout bounds one ad-hoc query (the query API, the status
	// page), the wait for a free slot included (default 30s).
	QueryTimeout dsl.Duration `yaml:"query_timeout"`
	// MaxConcurrentQueries bounds the ad-hoc queries running at once
	// (default 4). They have their own connections, apart from the rules'.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries"`
}

// DSL returns the limits every expression is parsed with: rules, `check
// rules`, `callwatch query` and the query API share them.
func (l Limits) DSL() dsl.Limits {
	return dsl.Limits{MaxRange: l.MaxWindow.D()}
}

// Secret is a string never printed: its String and YAML forms are redacted.
// A value of the form ${NAME} is read from the environment.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// MarshalYAML redacts the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML reads the secret, expanding ${NAME} from the environment.
func (s *Secret) UnmarshalYAML(node *yaml.Node) error {
	v := node.Value
	if strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}") {
		name := v[2 : len(v)-1]
		env, ok := os.LookupEnv(name)
		if !ok {
			return fmt.Errorf("line %d: environment variable %s is not set", node.Line, name)
		}
		v = env
	}
	*s = Secret(v)
	return nil
}

// Notifier is one notification channel.
type Notifier struct {
	notify.ChannelConfig `yaml:",inline"`
	// Timeout bounds one delivery attempt (default 10s).
	Timeout dsl.Duration `yaml:"timeout"`
	// RepeatInterval re-sends a firing alert to a direct channel at this
	// interval (default: never; Alertmanager gets Prometheus' resends).
	RepeatInterval dsl.Duration `yaml:"repeat_interval"`
}

// Notification tunes delivery for every channel.
type Notification struct {
	// QueueSize bounds each channel's queue (default 1000).
	QueueSize int `yaml:"queue_size"`
	// MaxAttempts bounds the attempts per message (default 5).
	MaxAttempts int `yaml:"max_attempts"`
	// ResendDelay is the minimum time between resends of a firing alert to
	// Alertmanager (default 1m).
	ResendDelay dsl.Duration `yaml:"resend_delay"`
	// DrainTimeout bounds how long shutdown waits for queues to drain (default 10s).
	DrainTimeout dsl.Duration `yaml:"drain_timeout"`
	// EvidenceTimeout bounds the evidence of one rule at one evaluation
	// (rules' evidence:, default 5s): the notifications of alerts whose
	// evidence is not ready by then go out without it, saying so.
	EvidenceTimeout dsl.Duration `yaml:"evidence_timeout"`
}

// ClickHouse configures the connection and the tables.
type ClickHouse struct {
	// DSN is clickhouse://user:password@host:9000/database.
	DSN string `yaml:"dsn"`
	// EventsTable is the table of call events, optionally database.table.
	EventsTable string `yaml:"events_table"`
	// QueryTimeout bounds each query (default 30s).
	QueryTimeout dsl.Duration `yaml:"query_timeout"`
	// AuditTable records alert transitions, notifications and operator
	// actions (default callwatch_alert_log); created at start when missing.
	AuditTable string `yaml:"audit_table"`
	// Cluster, when set, is the name of a cluster in the ClickHouse
	// servers' remote_servers: callwatch's own tables (the audit and lease
	// tables) are created ON CLUSTER, replicated through ZooKeeper, with a
	// Distributed table in front (docs/operations.md). Empty: one server.
	Cluster string `yaml:"cluster"`
	// HealthInterval is how often the built-in DatasourceDown alert pings
	// ClickHouse (default 15s); DownAfter how long pings must fail before it
	// fires (default 1m).
	HealthInterval dsl.Duration `yaml:"health_interval"`
	DownAfter      dsl.Duration `yaml:"down_after"`
	// Incremental configures rule evaluation from per-bucket partial
	// aggregates (on by default).
	Incremental Incremental `yaml:"incremental"`
	// Embedded, when its path is set, stores everything in embedded
	// ClickHouse (chDB's libchdb.so) on disk instead of a server; dsn is
	// then unused.
	Embedded Embedded `yaml:"embedded"`
}

// Incremental configures incremental rule evaluation: every aggregate is
// computed from partial states per bucket that callwatch keeps between
// evaluations (value counts for exact quantiles), so an evaluation reads
// only new buckets, the late window and the buckets leaving its window,
// not its whole window.
type Incremental struct {
	// Enabled turns it on (default true).
	Enabled *bool `yaml:"enabled"`
	// Bucket is the width of a partial aggregate (default 1m, whole
	// seconds). Rules take the incremental path when their interval,
	// windows and offsets are multiples of it.
	Bucket dsl.Duration `yaml:"bucket"`
	// LateWindow is how long after its end a bucket is read again, so rows
	// that land late are counted (default 2m).
	LateWindow dsl.Duration `yaml:"late_window"`
	// MaxDistinctValues bounds the distinct values of a field an exact
	// quantile keeps per group as value counts (default 50000); a field
	// with more takes the full path.
	MaxDistinctValues int `yaml:"max_distinct_values"`
}

// On reports whether incremental evaluation is enabled.
func (i Incremental) On() bool { return i.Enabled == nil || *i.Enabled }

// Embedded configures embedded ClickHouse.
type Embedded struct {
	// Path is the data directory; it survives restarts.
	Path string `yaml:"path"`
	// Library is libchdb.so (default: $CALLWATCH_CHDB_LIB, else
	// .cache/chdb/libchdb.so, where `make chdb` puts it).
	Library string `yaml:"library"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.ClickHouse.DSN == "" {
		c.ClickHouse.DSN = "clickhouse://127.0.0.1:9000/default"
	}
	if c.ClickHouse.EventsTable == "" {
		c.ClickHouse.EventsTable = "ai_call_events"
	}
	if c.ClickHouse.QueryTimeout == 0 {
		c.ClickHouse.QueryTimeout = dsl.Duration(30 * time.Second)
	}
	if c.Schema.Time == "" && c.Schema.Labels == nil && c.Schema.Fields == nil {
		d := dsl.DefaultSchema()
		units := c.Schema.Units // given alone, units apply to the default fields
		if units == nil {
			units = d.Units
		}
		c.Schema = Schema{Time: d.Time, Labels: d.Labels, Fields: map[string]Columns{}, RequestID: c.Schema.RequestID, Units: units}
		for k, v := range d.Fields {
			c.Schema.Fields[k] = Columns(v)
		}
	}
	if c.RuleFiles == nil {
		c.RuleFiles = []string{"rules.d/*.yaml"}
	}
	c.Exporter.SetDefaults()
	if c.Limits.MaxWindow == 0 {
		c.Limits.MaxWindow = dsl.Duration(31 * 24 * time.Hour)
	}
	if c.Limits.MaxSeriesPerRule == 0 {
		c.Limits.MaxSeriesPerRule = 10000
	}
	if c.Limits.QueryTimeout == 0 {
		c.Limits.QueryTimeout = dsl.Duration(30 * time.Second)
	}
	if c.Limits.MaxConcurrentQueries == 0 {
		c.Limits.MaxConcurrentQueries = 4
	}
	if c.ClickHouse.HealthInterval == 0 {
		c.ClickHouse.HealthInterval = dsl.Duration(15 * time.Second)
	}
	if c.ClickHouse.DownAfter == 0 {
		c.ClickHouse.DownAfter = dsl.Duration(time.Minute)
	}
	if c.ClickHouse.Incremental.Bucket == 0 {
		c.ClickHouse.Incremental.Bucket = dsl.Duration(time.Minute)
	}
	if c.ClickHouse.Incremental.LateWindow == 0 {
		c.ClickHouse.Incremental.LateWindow = dsl.Duration(2 * time.Minute)
	}
	if c.HA.LeaseTable == "" {
		c.HA.LeaseTable = "callwatch_replicas"
	}
	if c.HA.Heartbeat == 0 {
		c.HA.Heartbeat = dsl.Duration(5 * time.Second)
	}
	if c.HA.TTL == 0 {
		c.HA.TTL = 3 * c.HA.Heartbeat
	}
	if c.ClickHouse.AuditTable == "" {
		c.ClickHouse.AuditTable = "callwatch_alert_log"
	}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		if n.Timeout == 0 {
			n.Timeout = dsl.Duration(10 * time.Second)
		}
		n.ChannelConfig.Timeout = n.Timeout.D()
		if n.Type == "wecom" && n.RatePerMinute == 0 {
			n.RatePerMinute = 20 // the WeCom bot limit
		}
	}
	if c.DefaultNotify == nil {
		for _, n := range c.Notifiers {
			if n.Type == "log" {
				c.DefaultNotify = append(c.DefaultNotify, n.Name)
			}
		}
	}
	if c.Notification.QueueSize == 0 {
		c.Notification.QueueSize = 1000
	}
	if c.Notification.MaxAttempts == 0 {
		c.Notification.MaxAttempts = 5
	}
	if c.Notification.ResendDelay == 0 {
		c.Notification.ResendDelay = dsl.Duration(time.Minute)
	}
	if c.Notification.DrainTimeout == 0 {
		c.Notification.DrainTimeout = dsl.Duration(10 * time.Second)
	}
}

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration strictly, applies defaults and validates it.
// Errors start with the line number where known ("12: ...").
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf(" %w", err)
	}
	return c, nil
}

var (
	yamlLineRe   = regexp.MustCompile(`line (\d+): (.*)`)
	unknownKeyRe = regexp.MustCompile(`field (\S+) not found in type (\S+)`)
)

// yamlError turns yaml.v3's errors into "LINE: message" with a hint for
// unknown keys.
func yamlError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		text := m[2]
		if k := unknownKeyRe.FindStringSubmatch(text); k != nil {
			text = fmt.Sprintf("unknown key %q; check its spelling against docs/configuration.md", k[1])
		}
		return fmt.Errorf("%s: %s", m[1], text)
	}
	return fmt.Errorf(" %s", msg)
}

var (
	tableRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	clusterRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks the configuration without I/O.
func (c *Config) Validate() error {
	if !tableRe.MatchString(c.ClickHouse.EventsTable) {
		return fmt.Errorf("clickhouse.events_table: %q is not a table name; write table or database.table (letters, digits, _)", c.ClickHouse.EventsTable)
	}
	u, err := url.Parse(c.ClickHouse.DSN)
	if err != nil || (u.Scheme != "clickhouse" && u.Scheme != "tcp") || u.Host == "" {
		return fmt.Errorf("clickhouse.dsn: %q is not a DSN; write clickhouse://user:password@host:9000/database", RedactDSN(c.ClickHouse.DSN))
	}
	if c.ClickHouse.QueryTimeout <= 0 {
		return fmt.Errorf("clickhouse.query_timeout: must be positive, e.g. 30s")
	}
	if b := c.ClickHouse.Incremental.Bucket.D(); b < time.Second || b%time.Second != 0 {
		return fmt.Errorf("clickhouse.incremental.bucket: %s is not a whole number of seconds ≥ 1s; write e.g. 1m", b)
	}
	if c.ClickHouse.Incremental.MaxDistinctValues < 0 {
		return fmt.Errorf("clickhouse.incremental.max_distinct_values: must not be negative; write e.g. 50000")
	}
	if c.ClickHouse.Incremental.LateWindow < 0 {
		return fmt.Errorf("clickhouse.incremental.late_window: must not be negative; write e.g. 2m")
	}
	if !tableRe.MatchString(c.HA.LeaseTable) {
		return fmt.Errorf("ha.lease_table: %q is not a table name; write table or database.table", c.HA.LeaseTable)
	}
	if c.HA.Heartbeat <= 0 || c.HA.TTL <= c.HA.Heartbeat {
		return fmt.Errorf("ha: heartbeat must be positive and ttl longer than it (e.g. heartbeat: 5s, ttl: 15s)")
	}
	if c.HA.ShareGroups && !c.HA.Enabled {
		return fmt.Errorf("ha.share_groups: the replicas share groups through the lease table; add ha.enabled: true")
	}
	if !tableRe.MatchString(c.ClickHouse.AuditTable) {
		return fmt.Errorf("clickhouse.audit_table: %q is not a table name; write table or database.table", c.ClickHouse.AuditTable)
	}
	if c.ClickHouse.Cluster != "" && !clusterRe.MatchString(c.ClickHouse.Cluster) {
		return fmt.Errorf("clickhouse.cluster: %q is not a cluster name; write the name of a cluster in the servers' remote_servers (letters, digits, _)", c.ClickHouse.Cluster)
	}
	if c.ClickHouse.Cluster != "" && c.ClickHouse.Embedded.Path != "" {
		return fmt.Errorf("clickhouse.cluster: embedded ClickHouse is one process, not a cluster; remove cluster, or embedded.path to use servers")
	}
	if err := c.Schema.DSL().Validate(); err != nil {
		return err
	}
	if err := c.Exporter.Validate(c.Schema.DSL()); err != nil {
		return err
	}
	names := map[string]bool{}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		if err := n.ChannelConfig.Validate(); err != nil {
			return fmt.Errorf("notifiers[%d]: %w", i, err)
		}
		if names[n.Name] {
			return fmt.Errorf("notifiers[%d]: the name %q is used twice", i, n.Name)
		}
		names[n.Name] = true
		if n.Timeout <= 0 || n.RepeatInterval < 0 {
			return fmt.Errorf("notifiers[%d] (%s): timeout must be positive and repeat_interval not negative", i, n.Name)
		}
	}
	for _, d := range c.DefaultNotify {
		if !names[d] {
			return fmt.Errorf("default_notify: no notifier named %q; configured: %s", d, strings.Join(c.ChannelNames(), ", "))
		}
	}
	if c.Limits.MaxWindow <= 0 || c.Limits.MaxWindow.D() > dsl.MaxLookback {
		return fmt.Errorf("limits.max_window: write a positive duration of at most %s, e.g. 31d", model.Duration(dsl.MaxLookback))
	}
	if c.Limits.MaxSeriesPerRule < 1 || c.Limits.MaxConcurrentQueries < 1 || c.Limits.QueryTimeout <= 0 {
		return fmt.Errorf("limits: max_series_per_rule and max_concurrent_queries must be at least 1 and query_timeout positive")
	}
	if c.Notification.QueueSize < 1 || c.Notification.MaxAttempts < 1 {
		return fmt.Errorf("notification: queue_size and max_attempts must be at least 1")
	}
	return nil
}

// RedactDSN hides the secrets of a DSN, for messages and the start banner:
// the password of the user, the values of parameters named like
// credentials (password=, token=, …) and the credentials of URLs given as
// parameters (http_proxy=http://user:password@…). A DSN that does not parse
// shows nothing of itself.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparsable dsn>"
	}
	if u.Opaque != "" {
		return u.Scheme + ":<redacted>"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), dsnMask)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "<unparsable dsn>"
		}
		for k, vs := range q {
			for i, v := range vs {
				if credentialParam.MatchString(k) {
					vs[i] = dsnMask
				} else if strings.Contains(v, "://") {
					vs[i] = RedactDSN(v)
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = "<redacted>", ""
	}
	return u.String()
}

// dsnMask replaces a secret in a printed DSN.
const dsnMask = "xxxxx"

// credentialParam matches the names of DSN parameters whose values are
// credentials.
var credentialParam = regexp.MustCompile(`(?i)pass|pwd|secret|token|key|auth|cred|sign`)

// dsnSecrets are the secrets of a DSN (see RedactDSN), found in its text,
// so that a DSN that does not parse gives them too; nested URLs (an
// http_proxy) are searched once decoded.
func dsnSecrets(dsn string) []string {
	var out []string
	add := func(s string) {
		out = append(out, s)
		if d, err := url.QueryUnescape(s); err == nil && d != s {
			out = append(out, d)
		} else if d, err := url.PathUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
	}
	if m := dsnUserinfo.FindStringSubmatch(dsn); m != nil {
		add(m[1])
	}
	if _, query, ok := strings.Cut(dsn, "?"); ok {
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if v == "" {
				continue
			}
			if credentialParam.MatchString(k) {
				add(v)
			} else if d, err := url.QueryUnescape(v); err == nil && strings.Contains(d, "://") {
				out = append(out, dsnSecrets(d)...)
			}
		}
	}
	return out
}

// dsnUserinfo finds the password of a URL's user info.
var dsnUserinfo = regexp.MustCompile(`^[A-Za-z][\w+.-]*://[^/?#@]*?:([^/?#@]*)@`)

// RedactDSNError hides the secrets of dsn (see RedactDSN) in err's text,
// in any encoding: drivers and servers quote parts of the DSN they
// reject. It keeps the context's errors for errors.Is and returns err
// itself when there was nothing to hide.
func RedactDSNError(dsn string, err error) error {
	return notify.RedactError(err, dsnSecrets(dsn)...)
}

// ChannelNames returns the names of the configured notification channels.
func (c *Config) ChannelNames() []string {
	out := make([]string, 0, len(c.Notifiers))
	for _, n := range c.Notifiers {
		out = append(out, n.Name)
	}
	return out
}
