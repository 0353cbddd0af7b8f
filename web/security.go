package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// AdminTokenHeader carries the admin token as an alternative to
// "Authorization: Bearer <token>", for when Authorization holds the basic
// auth credentials of --web.config.file.
const AdminTokenHeader = "X-Callwatch-Admin-Token"

// guard protects the endpoints that change state: every method but GET,
// HEAD and OPTIONS, on the API and on the status page alike.
//
// A browser is refused a write that another origin asks it to make
// (http.CrossOriginProtection: Sec-Fetch-Site, or Origin against Host),
// with or without an admin token, because a page on any site the operator
// opens could otherwise post forms to callwatch. Without an admin token a
// browser's write must also be addressed to an IP address, localhost or
// the host of a trusted origin: a DNS name the attacker made resolve to
// callwatch (DNS rebinding) is the server's own origin to the browser.
// Clients that are not browsers send neither Origin nor Sec-Fetch-Site and
// are not affected; the admin token is what keeps them out.
type guard struct {
	cop *http.CrossOriginProtection
	// tokenSum is the SHA-256 of the admin token, nil without one; sums
	// of equal length compare in constant time whatever the lengths of
	// the tokens.
	tokenSum []byte
	// hosts are the names, besides IP addresses and localhost, a browser
	// may address writes to without an admin token: the trusted origins'.
	hosts  map[string]bool
	logger *slog.Logger
}

// newGuard builds the guard of opts, whose AdminToken is already trimmed.
func newGuard(opts Options) *guard {
	g := &guard{cop: http.NewCrossOriginProtection(), hosts: map[string]bool{}, logger: opts.Logger}
	if opts.AdminToken != "" {
		sum := sha256.Sum256([]byte(opts.AdminToken))
		g.tokenSum = sum[:]
	}
	for _, o := range opts.TrustedOrigins {
		origin, host, err := originOf(o)
		if err == nil {
			err = g.cop.AddTrustedOrigin(origin)
		}
		if err != nil {
			g.logger.Error("ignoring a trusted origin", "origin", o, "err", err)
			continue
		}
		g.hosts[host] = true
	}
	return g
}

// originOf returns the origin of a URL as browsers send it in Origin
// (lower case, without a default port, path or query) and its host name.
func originOf(raw string) (origin, host string, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", "", err
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme != "http" && scheme != "https") || host == "" {
		return "", "", fmt.Errorf("%q is not an http or https URL", raw)
	}
	switch {
	case port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443"):
		origin = scheme + "://" + net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		origin = scheme + "://[" + host + "]"
	default:
		origin = scheme + "://" + host
	}
	return origin, host, nil
}

// protect refuses the writes a browser makes for another origin, and,
// without an admin token, those addressed to a name that is not trusted.
func (g *guard) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.check(r); err != nil {
			g.logger.Warn("refused a browser's request to change state", "method", r.Method, "path", r.URL.Path, "host", r.Host,
				"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr, "err", err)
			fail(w, http.StatusForbidden, "forbidden", err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var errCrossOrigin = errors.New("cross-origin request refused: callwatch changes state only for its own pages " +
	"(and the origin of --web.external-url) and for clients that are not browsers")

// readOnlyPOST are the endpoints whose POST only reads: Prometheus' query
// API takes its parameters as a form as well as in the URL, and a page of
// another origin may ask them as it may GET them (Prometheus allows both;
// the query slots and deadline bound what a flood costs).
var readOnlyPOST = map[string]bool{"/api/v1/query": true, "/api/v1/query_range": true, "/api/v1/labels": true, "/api/v1/series": true}

func (g *guard) check(r *http.Request) error {
	if r.Method == http.MethodPost && readOnlyPOST[r.URL.Path] {
		return nil
	}
	if err := g.cop.Check(r); err != nil {
		return fmt.Errorf("%w (%w)", errCrossOrigin, err)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	browser := r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
	if g.tokenSum == nil && browser && !g.hostAllowed(r.Host) {
		return fmt.Errorf("request to %q refused: without web.admin_token, a browser may change state only at an IP address, "+
			"localhost or the host of --web.external-url (a DNS name pointed at callwatch by another site must not reach it)", r.Host)
	}
	return nil
}

// hostAllowed reports whether a Host header names the server by an IP
// address, localhost or a trusted origin's host.
func (g *guard) hostAllowed(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return host == "localhost" || g.hosts[host]
}

// authorized reports whether r carries the admin token, as
// "Authorization: Bearer <token>" or in AdminTokenHeader; without an admin
// token, every request is.
func (g *guard) authorized(r *http.Request) bool {
	if g.tokenSum == nil {
		return true
	}
	if scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " "); found && strings.EqualFold(scheme, "Bearer") && g.matches(token) {
		return true
	}
	return g.matches(r.Header.Get(AdminTokenHeader))
}

// matches compares token, trimmed, with the admin token in constant time.
// An empty token never matches.
func (g *guard) matches(token string) bool {
	token = strings.TrimSpace(token)
	if g.tokenSum == nil || token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], g.tokenSum) == 1
}

// WritesExposed reports whether serving on listenAddress (host:port, as
// --web.listen-address) with adminToken leaves the endpoints that change
// state open to other hosts: the address is not a loopback one (an empty
// host, 0.0.0.0 and :: mean every interface; a name other than localhost
// may resolve to anything) and the token is empty or blank, which is the
// same as none.
func WritesExposed(listenAddress, adminToken string) bool {
	return strings.TrimSpace(adminToken) == "" && !loopback(listenAddress)
}

func loopback(listenAddress string) bool {
	host, _, err := net.SplitHostPort(listenAddress)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
