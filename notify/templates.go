package notify

import (
	"bytes"
	"embed"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

// Format is the markup a channel's messages are written in. The default
// templates use the functions bold and link, whose output depends on it, so
// one template serves every channel.
//
// Every value a template is given (MessageData, AlertData, DigestData: the
// labels, the annotations, the titles and texts made of them, the rule's
// names) is escaped for the format before the template runs, so that a
// label value such as `<@all> [click](http://evil.example) **URGENT**`
// shows as it is: no mention, no link, no bold. What the template itself
// writes is markup. Only the links callwatch makes (AlertsURL,
// GeneratorURL) are left as they are, for link.
type Format int

// The formats.
const (
	// FormatMarkdown is the markdown of WeCom group bots: **bold**,
	// [text](url), mentions written <@userid>.
	FormatMarkdown Format = iota
	// FormatSlack is Slack's mrkdwn: *bold*, <url|text>, and &, <, >
	// escaped in text.
	FormatSlack
	// FormatText is plain text: no markup, links written as "text: url".
	FormatText
	// FormatDingTalk is DingTalk's markdown, where @mobile and @userid in
	// the text are mentions.
	FormatDingTalk
	// FormatFeishu is the markdown of Feishu cards, with <at id=…></at>
	// mentions.
	FormatFeishu
)

// TemplateOptions configure NewTemplates.
type TemplateOptions struct {
	Format Format
	// Location is the time zone of the times in texts (default UTC).
	Location *time.Location
	// ExternalURL is callwatch's URL for links when a Batch has none.
	ExternalURL *url.URL
}

// Message is a rendered notification: a short title (a chat preview, a card
// header) and the text.
type Message struct {
	Title string
	Text  string
}

// MessageData is what a message template is executed with: the firing (or,
// for the resolved template, the resolved) alerts of one Batch.
type MessageData struct {
	// Status is "firing" or "resolved".
	Status string
	// Language is "zh" or "en".
	Language    string
	Group, Rule string
	// Expr is the rule's expression as written.
	Expr string
	// Severity is the highest severity of Alerts, upper case ("" when none).
	Severity string
	// Title is the default title: the alerts' common `title` annotation, else
	// "[SEVERITY] Rule"; resolved titles start with "[已恢复] " or "[RESOLVED] ".
	Title string
	// Time is the evaluation that produced the batch.
	Time string
	// AlertsURL lists callwatch's alerts; GeneratorURL opens the rule on
	// the status page. Both are empty without an external URL.
	AlertsURL, GeneratorURL string
	Alerts                  []AlertData
}

// AlertData is one alert as templates see it. Times are RFC 3339 in the
// sender's Location; empty when not set.
type AlertData struct {
	// Fingerprint is the alert's label hash, 16 hex digits.
	Fingerprint string
	// Status is "firing" or "resolved".
	Status string
	Rule   string
	// Title is the `title` annotation, else "[SEVERITY] Rule".
	Title string
	// Severity is the severity label, upper case.
	Severity string
	// Text is what the message says about the alert. Firing: the `message`
	// annotation (zh) or `summary` (en), falling back to the other, else
	// lines in the replaced service's wording ("规则 'X' 触发告警", "当前值: …",
	// "阈值: …", "租户: …", "应用: …"). Resolved: "规则 'X' 已恢复" and the
	// same lines, with the last value.
	Text string
	// Message and Summary are the annotations of those names.
	Message, Summary string
	// Value is the expression's (last) value; Threshold is the `threshold`
	// annotation, empty when the rule has none.
	Value, Threshold string
	// TenantID and AppCode are the scope labels tenant_id and app_code.
	TenantID, AppCode string
	// Key lists the labels that tell this alert from the rule's others (the
	// labels of the query result), "tenant_id=acme"; empty when there are none.
	Key string
	// Time is FiredAt for a firing alert, ResolvedAt for a resolved one.
	Time                          string
	ActiveAt, FiredAt, ResolvedAt string
	Labels, Annotations           map[string]string
	// Evidence is what explained the alert when it started firing (a
	// rule's evidence:), nil without; the built-in texts show it under a
	// firing alert with the template "evidence".
	Evidence *EvidenceData
}

// DigestData is what the digest template is executed with: a summary of the
// batches a rate-limited channel folded into one message.
type DigestData struct {
	Language string
	// Title is "[callwatch] 告警摘要: N 条告警, M 个规则" or its English.
	Title string
	// Time is the latest evaluation among the batches.
	Time      string
	AlertsURL string
	// Total, Firing and Resolved count distinct alerts (by fingerprint and
	// status) over all batches.
	Total, Firing, Resolved int
	Rules                   []DigestRule
}

// DigestRule summarises one rule's alerts in a digest.
type DigestRule struct {
	Group, Rule, Title, Severity string
	Firing, Resolved             int
	// Alerts are the first few; More counts the others.
	Alerts []AlertData
	More   int
}

// How many alerts a digest lists: the counts cover all of them.
const (
	digestAlertsPerRule = 3
	digestAlertsTotal   = 10
)

// defaultTexts are the built-in texts, templates/LANG.tmpl: each defines
// "firing", "resolved" and "digest", as Alertmanager ships default.tmpl.
//
//go:embed templates/*.tmpl
var defaultTexts embed.FS

// Templates renders batches into messages for one channel: the built-in
// texts in the channel's language, or its own templates.
type Templates struct {
	lang string
	opts TemplateOptions
	// esc escapes a value for opts.Format.
	esc                      func(string) string
	firing, resolved, digest *template.Template
	// defaults are the built-in templates, used when a custom one fails.
	defFiring, defResolved, defDigest *template.Template
}

// NewTemplates parses cfg's templates (cfg.Template for firing alerts,
// cfg.ResolvedTemplate for resolved ones) or picks the built-in ones in
// cfg.Language. A custom template may define "title" to set the title and,
// in cfg.Template, "digest" to replace the digest's text.
func NewTemplates(cfg ChannelConfig, opts TemplateOptions) (*Templates, error) {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	t := &Templates{lang: cfg.Language, opts: opts, esc: escaper(opts.Format)}
	if t.lang == "" {
		t.lang = "zh"
	}
	funcs := templateFuncs(opts.Format)
	def, err := template.New("default").Funcs(funcs).Option("missingkey=zero").ParseFS(defaultTexts, "templates/"+t.lang+".tmpl")
	if err != nil {
		return nil, fmt.Errorf("notifier %q: default templates: %w", cfg.Name, err)
	}
	parse := func(name, text string) *template.Template {
		if err != nil {
			return nil
		}
		var tm *template.Template
		tm, err = template.New(name).Funcs(funcs).Option("missingkey=zero").Parse(text)
		if err != nil {
			err = fmt.Errorf("notifier %q: %s: %w", cfg.Name, name, err)
		}
		return tm
	}
	t.defFiring, t.defResolved, t.defDigest = def.Lookup("firing"), def.Lookup("resolved"), def.Lookup("digest")
	t.firing, t.resolved, t.digest = t.defFiring, t.defResolved, t.defDigest
	if cfg.Template != "" {
		t.firing = parse("template", cfg.Template)
		if err == nil && t.firing.Lookup("digest") != nil {
			t.digest = t.firing.Lookup("digest")
		}
	}
	if cfg.ResolvedTemplate != "" {
		t.resolved = parse("resolved_template", cfg.ResolvedTemplate)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Render renders b: its firing alerts with the firing template, then its
// resolved ones with the resolved template, in one message; or, when
// b.Digest is set, the digest of those batches. A custom template that fails
// to execute falls back to the built-in one, with the error appended, so an
// alert is never lost to a template mistake.
//
// The text's template gets values escaped for the channel's format; the
// title (a chat preview, a card header: plain text everywhere) is made from
// the values as they are.
func (t *Templates) Render(b Batch) (Message, error) {
	if len(b.Digest) > 0 {
		d := t.digestData(b)
		text, err := t.exec(t.digest, t.defDigest, escapeDigest(d, t.esc))
		return Message{Title: d.Title, Text: text}, err
	}
	var firing, resolved []engine.Alert
	for _, a := range b.Alerts {
		if isResolved(a) {
			resolved = append(resolved, a)
		} else {
			firing = append(firing, a)
		}
	}
	var msg Message
	var parts []string
	for _, part := range []struct {
		alerts   []engine.Alert
		tmpl     *template.Template
		fallback *template.Template
	}{{firing, t.firing, t.defFiring}, {resolved, t.resolved, t.defResolved}} {
		if len(part.alerts) == 0 {
			continue
		}
		d := t.messageData(b, part.alerts)
		title := d.Title
		if tt := part.tmpl.Lookup("title"); tt != nil {
			s, err := t.exec(tt, nil, d)
			if err != nil {
				return Message{}, err
			}
			title = strings.TrimSpace(s)
		}
		text, err := t.exec(part.tmpl, part.fallback, escapeMessage(d, t.esc))
		if err != nil {
			return Message{}, err
		}
		if msg.Title == "" {
			msg.Title = title
		}
		parts = append(parts, text)
	}
	msg.Text = strings.Join(parts, "\n\n")
	return msg, nil
}

// exec runs tm, falling back to def when tm fails.
func (t *Templates) exec(tm, def *template.Template, data any) (string, error) {
	var buf bytes.Buffer
	err := tm.Execute(&buf, data)
	if err == nil {
		return tidy(buf.String()), nil
	}
	if def == nil || def == tm {
		return "", fmt.Errorf("execute %s: %w", tm.Name(), err)
	}
	buf.Reset()
	if derr := def.Execute(&buf, data); derr != nil {
		return "", fmt.Errorf("execute %s: %w", def.Name(), derr)
	}
	return tidy(buf.String()) + "\n\n(" + tm.Name() + " failed: " + t.esc(err.Error()) + ")", nil
}

func (t *Templates) messageData(b Batch, alerts []engine.Alert) MessageData {
	ext := externalURL(b, t.opts.ExternalURL)
	d := MessageData{
		Status:       "firing",
		Language:     t.lang,
		Group:        b.Group,
		Rule:         ruleName(b.Rule, alerts),
		Time:         t.formatTime(b.Time),
		AlertsURL:    alertsURL(ext),
		GeneratorURL: generatorURL(ext, b.Group, b.Rule),
	}
	if b.Rule != nil {
		d.Expr = b.Rule.ExprText
	}
	if isResolved(alerts[0]) {
		d.Status = "resolved"
	}
	for _, a := range alerts {
		d.Alerts = append(d.Alerts, t.alertData(a, b.Rule))
	}
	d.Severity = highestSeverity(d.Alerts)
	d.Title = t.partTitle(d)
	return d
}

// partTitle is the title of a batch's firing or resolved part.
func (t *Templates) partTitle(d MessageData) string {
	title := commonTitle(d.Alerts, d.Severity, d.Rule)
	if d.Status == "resolved" {
		if t.lang == "en" {
			return "[RESOLVED] " + title
		}
		return "[已恢复] " + title
	}
	return title
}

func (t *Templates) alertData(a engine.Alert, rule *rulefmt.RuleSpec) AlertData {
	ad := AlertData{
		Fingerprint: fingerprint(a),
		Status:      "firing",
		Rule:        a.Labels.Get(labels.AlertName),
		Severity:    strings.ToUpper(severityOf(a, rule)),
		Message:     a.Annotations.Get("message"),
		Summary:     a.Annotations.Get("summary"),
		Value:       FormatValue(a.Value),
		Threshold:   a.Annotations.Get("threshold"),
		TenantID:    a.Labels.Get("tenant_id"),
		AppCode:     a.Labels.Get("app_code"),
		Key:         alertKey(a, rule),
		ActiveAt:    t.formatTime(a.ActiveAt),
		FiredAt:     t.formatTime(a.FiredAt),
		ResolvedAt:  t.formatTime(a.ResolvedAt),
		Labels:      a.Labels.Map(),
		Annotations: a.Annotations.Map(),
		Evidence:    t.evidenceData(a.Evidence),
	}
	if ad.Rule == "" && rule != nil {
		ad.Rule = rule.Alert
	}
	ad.Title = ad.Annotations["title"]
	if ad.Title == "" {
		ad.Title = severityTitle(ad.Severity, ad.Rule)
	}
	ad.Time = ad.FiredAt
	if ad.Time == "" {
		ad.Time = ad.ActiveAt
	}
	if isResolved(a) {
		ad.Status = "resolved"
		ad.Time = ad.ResolvedAt
	}
	ad.Text = t.alertText(ad)
	return ad
}

// alertText is AlertData.Text.
func (t *Templates) alertText(ad AlertData) string {
	w := words[t.lang]
	if ad.Status == "firing" {
		first, second := ad.Message, ad.Summary
		if t.lang == "en" {
			first, second = second, first
		}
		if first != "" {
			return first
		}
		if second != "" {
			return second
		}
	}
	var sb strings.Builder
	if ad.Status == "firing" {
		fmt.Fprintf(&sb, w.fired, ad.Rule)
		fmt.Fprintf(&sb, "\n%s: %s", w.value, ad.Value)
	} else {
		fmt.Fprintf(&sb, w.resolved, ad.Rule)
		fmt.Fprintf(&sb, "\n%s: %s", w.lastValue, ad.Value)
	}
	if ad.Threshold != "" {
		fmt.Fprintf(&sb, "\n%s: %s", w.threshold, ad.Threshold)
	}
	if ad.TenantID != "" {
		fmt.Fprintf(&sb, "\n%s: %s", w.tenant, ad.TenantID)
	}
	if ad.AppCode != "" {
		fmt.Fprintf(&sb, "\n%s: %s", w.app, ad.AppCode)
	}
	return sb.String()
}

// words are the phrases of the generated alert texts; the zh ones are the
// replaced service's.
var words = map[string]struct {
	fired, resolved, value, lastValue, threshold, tenant, app string
	digest                                                    string
	// latest and highest say which calls evidence's examples are.
	latest, highest string
}{
	"zh": {
		fired: "规则 '%s' 触发告警", resolved: "规则 '%s' 已恢复",
		value: "当前值", lastValue: "最后值", threshold: "阈值", tenant: "租户", app: "应用",
		digest: "[callwatch] 告警摘要: %d 条告警, %d 个规则",
		latest: "最近的", highest: "%s 最高的",
	},
	"en": {
		fired: "Rule '%s' fired", resolved: "Rule '%s' resolved",
		value: "Value", lastValue: "Last value", threshold: "Threshold", tenant: "Tenant", app: "App",
		digest: "[callwatch] Alert digest: %d alerts from %d rules",
		latest: "latest", highest: "highest %s",
	},
}

func (t *Templates) digestData(b Batch) DigestData {
	type ruleKey struct{ group, rule string }
	type seenKey struct {
		fp     uint64
		status bool
	}
	var order []ruleKey
	byRule := map[ruleKey]*DigestRule{}
	alertsOf := map[ruleKey][]engine.Alert{}
	specOf := map[ruleKey]*rulefmt.RuleSpec{}
	seen := map[ruleKey]map[seenKey]int{}
	var last time.Time
	var ext *url.URL
	for _, bb := range flattenDigest(b) {
		if bb.Time.After(last) {
			last = bb.Time
		}
		if ext == nil {
			ext = bb.ExternalURL
		}
		k := ruleKey{bb.Group, ruleName(bb.Rule, bb.Alerts)}
		if _, ok := byRule[k]; !ok {
			order = append(order, k)
			byRule[k] = &DigestRule{Group: k.group, Rule: k.rule}
			seen[k] = map[seenKey]int{}
		}
		if bb.Rule != nil {
			specOf[k] = bb.Rule
		}
		for _, a := range bb.Alerts {
			sk := seenKey{a.Fingerprint(), isResolved(a)}
			if i, dup := seen[k][sk]; dup {
				alertsOf[k][i] = a // the later copy is the newer
				continue
			}
			seen[k][sk] = len(alertsOf[k])
			alertsOf[k] = append(alertsOf[k], a)
		}
	}
	if b.ExternalURL != nil {
		ext = b.ExternalURL
	}
	if ext == nil {
		ext = t.opts.ExternalURL
	}
	if !b.Time.IsZero() {
		last = b.Time
	}
	d := DigestData{Language: t.lang, Time: t.formatTime(last), AlertsURL: alertsURL(ext)}
	listed := 0
	for _, k := range order {
		r := byRule[k]
		var ads []AlertData
		for _, a := range alertsOf[k] {
			ad := t.alertData(a, specOf[k])
			ads = append(ads, ad)
			if ad.Status == "resolved" {
				r.Resolved++
			} else {
				r.Firing++
			}
		}
		r.Severity = highestSeverity(ads)
		r.Title = commonTitle(ads, r.Severity, r.Rule)
		n := min(len(ads), digestAlertsPerRule, max(digestAlertsTotal-listed, 0))
		r.Alerts, r.More = ads[:n], len(ads)-n
		listed += n
		d.Firing += r.Firing
		d.Resolved += r.Resolved
		d.Rules = append(d.Rules, *r)
	}
	d.Total = d.Firing + d.Resolved
	d.Title = fmt.Sprintf(words[t.lang].digest, d.Total, len(d.Rules))
	return d
}

// flattenDigest returns the batches a digest stands for.
func flattenDigest(b Batch) []Batch {
	var out []Batch
	for _, bb := range b.Digest {
		if len(bb.Digest) > 0 {
			out = append(out, flattenDigest(bb)...)
			continue
		}
		out = append(out, bb)
	}
	return out
}

func (t *Templates) formatTime(ts time.Time) string {
	if ts.IsZero() {
		return ""
	}
	return ts.In(t.opts.Location).Format(time.RFC3339)
}

// isResolved reports whether a is a resolved alert.
func isResolved(a engine.Alert) bool { return !a.ResolvedAt.IsZero() }

// fingerprint is the alert's fingerprint as 16 hex digits, the alert_id of
// the legacy payload and the key of the audit trail.
func fingerprint(a engine.Alert) string { return fmt.Sprintf("%016x", a.Fingerprint()) }

// severityOf is the alert's severity label, else the rule's severity.
func severityOf(a engine.Alert, rule *rulefmt.RuleSpec) string {
	if s := a.Labels.Get("severity"); s != "" {
		return s
	}
	if rule != nil {
		return string(rule.Severity)
	}
	return ""
}

// commonTitle is the alerts' `title` annotation when they all have the
// same, else "[SEVERITY] rule".
func commonTitle(alerts []AlertData, severity, rule string) string {
	title := ""
	for i, a := range alerts {
		s := a.Annotations["title"]
		if i > 0 && s != title {
			title = ""
			break
		}
		title = s
	}
	if title == "" {
		title = severityTitle(severity, rule)
	}
	return title
}

// severityTitle is "[SEVERITY] rule", "[ALERT] rule" without a severity.
func severityTitle(severity, rule string) string {
	if severity == "" {
		severity = "ALERT"
	}
	return "[" + strings.ToUpper(severity) + "] " + rule
}

// highestSeverity is the most severe of the alerts' severities (upper
// case, as AlertData holds them).
func highestSeverity(alerts []AlertData) string {
	best, bestRank := "", -1
	for _, a := range alerts {
		if r := rulefmt.Severity(strings.ToLower(a.Severity)).Rank(); best == "" || r > bestRank {
			best, bestRank = a.Severity, r
		}
	}
	return best
}

func ruleName(rule *rulefmt.RuleSpec, alerts []engine.Alert) string {
	if rule != nil && rule.Alert != "" {
		return rule.Alert
	}
	for _, a := range alerts {
		if n := a.Labels.Get(labels.AlertName); n != "" {
			return n
		}
	}
	return ""
}

// alertKey lists the labels that are not the rule's own (alertname,
// severity, the rule's labels): those of the query result.
func alertKey(a engine.Alert, rule *rulefmt.RuleSpec) string {
	var parts []string
	a.Labels.Range(func(l labels.Label) {
		if l.Name == labels.AlertName || l.Name == "severity" {
			return
		}
		if rule != nil {
			if _, own := rule.Labels[l.Name]; own {
				return
			}
		}
		parts = append(parts, l.Name+"="+l.Value)
	})
	return strings.Join(parts, ", ")
}

// FormatValue writes a value for people, the one rendering of the
// messages and of the status page: from a million up with an SI prefix and
// four significant digits, as the templates' humanize writes it in
// annotations (6.533M); below, as the baseline's messages wrote it
// (当前值: 3456.789), integers without decimals, others with at most four
// decimals, tiny ones with four significant digits.
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return engine.FormatValue(v) // NaN, +Inf, -Inf
	case math.Abs(v) >= 1e6:
		prefix := ""
		for _, p := range []string{"k", "M", "G", "T", "P", "E", "Z", "Y"} {
			if math.Abs(v) < 1000 {
				break
			}
			v /= 1000
			prefix = p
		}
		return strconv.FormatFloat(v, 'g', 4, 64) + prefix
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) < 1e-3:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	s := strconv.FormatFloat(v, 'f', 4, 64)
	return strings.TrimRight(strings.TrimRight(s, "0"), ".")
}

// alertsPath is callwatch's list of alerts, the "all alerts" link.
const alertsPath = "/api/v1/alerts"

func alertsURL(ext *url.URL) string {
	if ext == nil {
		return ""
	}
	return strings.TrimRight(ext.String(), "/") + alertsPath
}

// generatorURL links to the rule's row on callwatch's status page (its
// expression, state, last evaluations and SQL): the generatorURL of alerts,
// the "Source" link of Alertmanager's notifications, as Prometheus links to
// its graph page.
func generatorURL(ext *url.URL, group string, rule *rulefmt.RuleSpec) string {
	if rule == nil {
		return ""
	}
	return engine.RuleURL(ext, group, rule.Name())
}

var (
	blankLines    = regexp.MustCompile(`\n{3,}`)
	trailingSpace = regexp.MustCompile(`[ \t]+\n`)
)

// tidy normalises a rendered text so templates need no whitespace control:
// no trailing blanks, at most one empty line in a row, none at the ends.
func tidy(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = trailingSpace.ReplaceAllString(s, "\n")
	s = blankLines.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s)
}

// truncatedMarker ends a text cut to a channel's size limit.
const truncatedMarker = "…(truncated)"

// truncateUTF8 returns s cut to at most limit bytes on a character
// boundary, ending with marker when it was cut (the marker counts in the
// limit). Invalid UTF-8 is replaced first, so the result is valid UTF-8.
func truncateUTF8(s string, limit int, marker string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	if len(marker) > limit {
		marker = ""
	}
	cut := limit - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// withMentions is text cut so that it and the mention tags after it (sep,
// then the tags joined by spaces) fit in limit bytes: the mentions survive
// the cut.
func withMentions(text string, limit int, sep string, tags []string) string {
	tail := ""
	if len(tags) > 0 {
		tail = sep + strings.Join(tags, " ")
	}
	return truncateUTF8(text, limit-len(tail), truncatedMarker) + tail
}

// templateFuncs are the functions templates can call, for format f. The
// values templates get are escaped already, so esc returns its argument: it
// stays for the templates written when it escaped.
func templateFuncs(f Format) template.FuncMap {
	fm := template.FuncMap{
		"add":        func(a, b int) int { return a + b },
		"upper":      strings.ToUpper,
		"lower":      strings.ToLower,
		"join":       func(sep string, s []string) string { return strings.Join(s, sep) },
		"sortedKeys": sortedKeys,
		"esc":        func(s string) string { return s },
	}
	switch f {
	case FormatSlack:
		fm["bold"] = func(s string) string { return "*" + s + "*" }
		fm["link"] = func(text, u string) string { return "<" + linkTarget(u, "|<> ") + "|" + text + ">" }
	case FormatText:
		fm["bold"] = func(s string) string { return s }
		fm["link"] = func(text, u string) string { return text + ": " + u }
	default:
		fm["bold"] = func(s string) string { return "**" + s + "**" }
		fm["link"] = func(text, u string) string { return "[" + text + "](" + linkTarget(u, "()<> ") + ")" }
	}
	return fm
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// linkTarget percent-encodes the characters of u that would end the link
// it is written in.
func linkTarget(u, enders string) string {
	if !strings.ContainsAny(u, enders) {
		return u
	}
	var b strings.Builder
	for _, c := range []byte(u) {
		if strings.IndexByte(enders, c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
