package notify

import (
	"context"
	"encoding/base64"
	"errors"
	"html"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// redactedMarker replaces a secret in the texts callwatch shows: errors,
// log lines, audit rows, API answers and pages.
const redactedMarker = "<secret>"

// minSecretLen is the length under which a configured secret is not
// searched for in texts: it would match everywhere. Such secrets are still
// hidden where their place is known (a URL's password or query).
const minSecretLen = 4

// redactor hides one channel's secrets in texts. It knows where each type
// of channel keeps them: the signing secret; the custom headers' values
// (Authorization and the like, with and without their scheme, and the
// password of basic credentials); in URLs, the user info, the query
// parameters of the bots (WeCom's key, DingTalk's access_token), any
// parameter named like a credential (or code, as Azure Functions' keys) and
// any value that looks like a token, and the path tokens of Slack
// (/services/T…/B…/…), Feishu (/hook/…) and any path segment that looks
// like a token. Each secret is replaced wherever it occurs, also
// percent-encoded, JSON-escaped or as HTML entities, so a service answering
// with the request it got (URL, headers or body) cannot make an error show
// it. Values of parameters named like credentials (sign=, access_token=,
// "token":"…") are hidden too, even when not configured: DingTalk's
// per-request signature, for one.
//
// Every error leaving a Sender made by New passes through it, so the audit
// trail, the history API, the status page and the logs are clean.
type redactor struct {
	// secrets are the configured secrets as they are, longest first.
	secrets []string
	// replace replaces every literal form of every secret.
	replace *strings.Replacer
}

// credentialName matches parameter and field names whose values are
// credentials.
const credentialName = `[\w.-]*(?:token|secret|key|sig|pass|pwd|auth|cred|session)[\w.-]*`

var (
	// credentialParam is name=value in a query string or a text.
	credentialParam = regexp.MustCompile(`(?i)\b(` + credentialName + `=)([^&\s"'<>\\]+)`)
	// credentialField is "name":"value" in JSON.
	credentialField = regexp.MustCompile(`(?i)("` + credentialName + `"\s*:\s*")((?:[^"\\]|\\.)+)(")`)
	// authorizationHeader is an echoed Authorization header: its
	// credentials, after the scheme.
	authorizationHeader = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization:\s*(?:[a-z]+\s+)?)([^\s,;"']+)`)
	// jsonUnicode is a \uXXXX escape.
	jsonUnicode = regexp.MustCompile(`\\u[0-9a-fA-F]{4}`)
)

// newRedactor collects cfg's secrets.
func newRedactor(cfg ChannelConfig) *redactor {
	var secrets []string
	add := func(s string) {
		if len(s) >= minSecretLen {
			secrets = append(secrets, s)
		}
	}
	add(cfg.Secret)
	for name, v := range cfg.Headers {
		if plainHeader[strings.ToLower(name)] {
			continue
		}
		add(v)
		fields := strings.Fields(v)
		for i, f := range fields {
			if i == 0 && len(fields) > 1 && authScheme[strings.ToLower(f)] {
				continue
			}
			add(f)
			if i == 1 && strings.EqualFold(fields[0], "basic") {
				if dec, err := base64.StdEncoding.DecodeString(f); err == nil {
					add(string(dec))
					if _, pass, ok := strings.Cut(string(dec), ":"); ok {
						add(pass)
					}
				}
			}
		}
	}
	for _, u := range append([]string{cfg.URL}, cfg.URLs...) {
		urlSecrets(cfg.Type, u, add)
	}
	return newRedactorOf(secrets)
}

// newRedactorOf is a redactor of the given secrets.
func newRedactorOf(secrets []string) *redactor {
	r := &redactor{}
	var forms []string
	for _, s := range secrets {
		if len(s) < minSecretLen {
			continue
		}
		r.secrets = append(r.secrets, s)
		forms = append(forms, secretForms(s)...)
	}
	slices.SortFunc(r.secrets, longestFirst)
	r.secrets = slices.Compact(r.secrets)
	slices.SortFunc(forms, longestFirst)
	forms = slices.Compact(forms)
	var pairs []string
	for _, f := range forms {
		pairs = append(pairs, f, redactedMarker)
	}
	r.replace = strings.NewReplacer(pairs...)
	return r
}

func longestFirst(a, b string) int {
	if len(a) != len(b) {
		return len(b) - len(a)
	}
	return strings.Compare(a, b)
}

// secretForms are the literal forms in which s can appear in a text: as it
// is, percent-encoded (either case of hex digits), with JSON's escaped
// slashes, and as HTML text.
func secretForms(s string) []string {
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s), strings.ReplaceAll(s, "/", `\/`), html.EscapeString(s)}
	for _, f := range forms[1:3] {
		forms = append(forms, lowerHex(f))
	}
	return forms
}

// lowerHex writes the %XX escapes of s in lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLowerASCII(b[i+1]), toLowerASCII(b[i+2])
		}
	}
	return string(b)
}

func toLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// plainHeader are headers whose values are no secrets.
var plainHeader = map[string]bool{"content-type": true, "accept": true, "accept-language": true, "accept-encoding": true,
	"content-encoding": true, "user-agent": true, "cache-control": true}

// authScheme are the schemes before the credentials of an Authorization
// header.
var authScheme = map[string]bool{"bearer": true, "basic": true, "token": true, "digest": true, "apikey": true, "key": true}

// botTypes keep the whole query of their URL secret (WeCom's key,
// DingTalk's access_token).
var botTypes = map[string]bool{"wecom": true, "dingtalk": true, "feishu": true, "slack": true}

// urlSecrets adds the secrets of the URL s of a channel of type typ.
func urlSecrets(typ, s string, add func(string)) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		return // Validate refuses it: it is never used
	}
	if u.User != nil {
		name := u.User.Username()
		if pass, ok := u.User.Password(); ok {
			add(pass)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
				add(enc.EncodeToString([]byte(name + ":" + pass)))
			}
		} else {
			add(name) // https://TOKEN@host/
		}
	}
	for k, vs := range u.Query() {
		for _, v := range vs {
			if botTypes[typ] || credentialNameRe.MatchString(k) || strings.EqualFold(k, "code") || tokenLike(v) {
				add(v)
			}
		}
	}
	after := ""
	switch typ {
	case "slack":
		after = "services"
	case "feishu":
		after = "hook"
	}
	secret := false
	for _, seg := range strings.Split(u.Path, "/") {
		if secret || tokenLike(seg) {
			add(seg)
		}
		if after != "" && seg == after {
			secret = true
		}
	}
	add(u.Fragment)
}

var credentialNameRe = regexp.MustCompile(`(?i)^` + credentialName + `$`)

// tokenLike reports whether a path segment looks like a generated token:
// long, or mixing letters and digits over 16 characters or more.
func tokenLike(seg string) bool {
	if len(seg) >= 32 {
		return true
	}
	if len(seg) < 16 {
		return false
	}
	letter, digit := false, false
	for _, c := range seg {
		letter = letter || unicode.IsLetter(c)
		digit = digit || unicode.IsDigit(c)
	}
	return letter && digit
}

// text returns s with the secrets hidden.
func (r *redactor) text(s string) string {
	s = r.literal(s)
	if len(r.secrets) == 0 || !strings.ContainsAny(s, `%\&`) {
		return s
	}
	// A secret some of whose characters were escaped another way (every
	// byte percent-encoded, \u escapes, entities): decode each word and
	// look again.
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && !isSpace(s[j]) {
			j++
		}
		word := s[i:j]
		if strings.ContainsAny(word, `%\&`) {
			if dec := decodeWord(word); dec != word && r.contains(dec) {
				word = r.literal(dec)
			}
		}
		b.WriteString(word)
		for j < len(s) && isSpace(s[j]) {
			b.WriteByte(s[j])
			j++
		}
		i = j
	}
	return b.String()
}

// literal replaces the literal forms of the secrets and the values of
// credential parameters.
func (r *redactor) literal(s string) string {
	if r.replace != nil {
		s = r.replace.Replace(s)
	}
	s = credentialParam.ReplaceAllString(s, "${1}"+redactedMarker)
	s = credentialField.ReplaceAllString(s, "${1}"+redactedMarker+"${3}")
	return authorizationHeader.ReplaceAllString(s, "${1}"+redactedMarker)
}

func (r *redactor) contains(s string) bool {
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			return true
		}
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// decodeWord undoes percent-encoding, JSON escapes and HTML entities, as far
// as they go.
func decodeWord(w string) string {
	w = jsonUnicode.ReplaceAllStringFunc(w, func(m string) string {
		n, _ := strconv.ParseUint(m[2:], 16, 32)
		return string(rune(n))
	})
	w = strings.ReplaceAll(w, `\/`, "/")
	w = html.UnescapeString(w)
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] == '%' && i+2 < len(w) {
			if n, err := strconv.ParseUint(w[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(w[i])
	}
	if s := b.String(); utf8.ValidString(s) {
		return s
	}
	return w
}

// err returns err with its text redacted (see redactError).
func (r *redactor) err(err error) error { return redactError(err, r.text) }

// RedactError returns err with every secret hidden in its text, in any
// encoding (see Redact), keeping what callers match; err itself when there
// was nothing to hide. Configuration errors use it for the DSN.
func RedactError(err error, secrets ...string) error {
	return redactError(err, func(s string) string { return Redact(s, secrets...) })
}

// redactError returns err with its text passed through redact, keeping
// what callers match: retryability and its delay, and the context's
// cancellation and deadline.
func redactError(err error, redact func(string) string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := redact(msg)
	if clean == msg {
		return err
	}
	out := error(&redactedError{msg: clean})
	for _, cause := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, cause) {
			out = &redactedError{msg: clean, cause: cause}
		}
	}
	var re *RetryableError
	if errors.As(err, &re) {
		return &RetryableError{Err: out, After: re.After}
	}
	return out
}

// redactedError is an error whose text had secrets; it unwraps only to the
// context's errors, so no caller can reach the original text.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Unwrap() error { return e.cause }

// redacting hides a channel's secrets in its sender's errors.
type redacting struct {
	sender Sender
	r      *redactor
}

var _ Sender = (*redacting)(nil)

// Send sends b and redacts the error.
func (x *redacting) Send(ctx context.Context, b Batch) error { return x.r.err(x.sender.Send(ctx, b)) }

// Redact returns text with each of secrets hidden, in any of the encodings
// a URL, JSON or HTML could give it, and the values of parameters named like
// credentials (password=…, "token":"…"). Configuration code uses it for the
// secrets of a DSN; channels hide their own secrets by themselves.
func Redact(text string, secrets ...string) string {
	return newRedactorOf(secrets).text(text)
}
