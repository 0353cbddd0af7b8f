package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
)

// endpoint is a request that changes state. Its path may hold {fp}, the
// fingerprint of a firing alert, and {silence}, the ID of an active
// silence.
type endpoint struct {
	name, method, path string
	form               url.Values
	page               bool // a form of the status page, which needs a signed-in operator
}

var stateChanging = []endpoint{
	{name: "reloading the rules", method: "POST", path: "/-/reload"},
	{name: "reloading the rules with PUT", method: "PUT", path: "/-/reload"},
	{name: "acknowledging through the API", method: "POST", path: "/api/v1/alerts/{fp}/ack", form: url.Values{"by": {"mallory"}}},
	{name: "resolving through the API", method: "POST", path: "/api/v1/alerts/{fp}/resolve", form: url.Values{"by": {"mallory"}}},
	{name: "silencing everything through the API", method: "POST", path: "/api/v1/silences",
		form: url.Values{"matchers": {`{alertname=~".+"}`}, "endsAt": {"2054-01-01T00:00:00Z"}, "createdBy": {"mallory"}}},
	{name: "expiring a silence through the API", method: "DELETE", path: "/api/v1/silences/{silence}"},
	{name: "signing in on the page", method: "POST", path: "/ui/login", form: url.Values{"user": {"mallory"}, "token": {"s3cret"}}, page: true},
	{name: "acknowledging on the page", method: "POST", path: "/ui/alerts/{fp}/ack", form: url.Values{"comment": {"x"}}, page: true},
	{name: "resolving on the page", method: "POST", path: "/ui/alerts/{fp}/resolve", page: true},
	{name: "silencing on the page", method: "POST", path: "/ui/silences", form: url.Values{"matchers": {`{alertname=~".+"}`}, "duration": {"1h"}}, page: true},
	{name: "expiring a silence on the page", method: "POST", path: "/ui/silences/{silence}/expire", page: true},
}

// securityFixture is a page fixture with an active silence to expire.
type securityFixture struct {
	*pageFixture
	token, fp, silence string
}

func newSecurityFixture(t *testing.T, token string, configure ...func(*Options)) *securityFixture {
	t.Helper()
	f := &securityFixture{pageFixture: newPageFixture(t, token, configure...), token: token}
	f.fp = f.fingerprint(t, "TenantErrors", "acme")
	s, err := f.sil.Add(context.Background(), engine.Silence{Matchers: mustMatchers(t, `{tenant_id="globex"}`),
		StartsAt: f.clock(), EndsAt: f.clock().Add(time.Hour), CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f.silence = s.ID
	return f
}

func mustMatchers(t *testing.T, s string) []*labels.Matcher {
	t.Helper()
	ms, err := engine.ParseMatchers(s)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// effects counts what changed the server's state: reloads and audit
// records (acknowledgements, resolves, silences), plus a sign-in cookie
// set by resp.
func (f *securityFixture) effects(resp *http.Response) int {
	recs, _ := f.audit.History(context.Background(), engine.AuditQuery{})
	n := int(f.reloads.Load()) + len(recs)
	if resp != nil {
		for _, c := range resp.Cookies() {
			if c.Name == userCookie && c.MaxAge >= 0 {
				n++
			}
		}
	}
	return n
}

// signIn returns the cookies of an operator signed in on the page, got the
// way curl would.
func (f *securityFixture) signIn(t *testing.T) []*http.Cookie {
	t.Helper()
	form := url.Values{"user": {"alice"}, "token": {f.token}}
	resp, err := noRedirects().PostForm(f.srv.URL+"/ui/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Cookies()
}

func noRedirects() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// request is how a request to an endpoint is sent. In header values and
// host, {server} stands for the server's URL and {port} for its port.
type request struct {
	header map[string]string
	query  string // added to the URL
	host   string // the Host header, when not the server's address
	// credentials adds the admin token (API) or a signed-in operator's
	// cookies (page), when the fixture has a token or the page needs them.
	credentials bool
}

// send sends e as r describes and returns the response, its body read.
func (f *securityFixture) send(t *testing.T, e endpoint, r request) (*http.Response, string) {
	t.Helper()
	path := strings.NewReplacer("{fp}", f.fp, "{silence}", f.silence).Replace(e.path)
	u := f.srv.URL + path
	if r.query != "" {
		u += "?" + r.query
	}
	req := newRequest(t, e.method, u, e.form)
	vars := strings.NewReplacer("{server}", f.srv.URL, "{port}", f.port())
	for k, v := range r.header {
		req.Header.Set(k, vars.Replace(v))
	}
	if r.host != "" {
		req.Host = vars.Replace(r.host)
	}
	if r.credentials {
		switch {
		case e.page && e.path != "/ui/login":
			for _, c := range f.signIn(t) {
				req.AddCookie(c)
			}
		case !e.page && f.token != "":
			req.Header.Set("Authorization", "Bearer "+f.token)
		}
	}
	return do(t, noRedirects(), req)
}

func tokenCase(token string) string {
	if token == "" {
		return "without an admin token"
	}
	return "with an admin token"
}

// namedRequest is a way of sending a request, named for a subtest.
type namedRequest struct {
	name string
	request
}

// eachStateChange sends every state-changing endpoint each of the
// requests, with and without an admin token, each time on a new fixture
// in a subtest "ENDPOINT by REQUEST is OUTCOME", and checks the answer:
// before is the fixture's count of effects before the request.
func eachStateChange(t *testing.T, requests []namedRequest, outcome string,
	check func(t *testing.T, f *securityFixture, e endpoint, before int, resp *http.Response, body string)) {
	for _, token := range []string{"", "s3cret"} {
		t.Run(tokenCase(token), func(t *testing.T) {
			for _, e := range stateChanging {
				for _, a := range requests {
					t.Run(e.name+" by "+a.name+" is "+outcome, func(t *testing.T) {
						f := newSecurityFixture(t, token)
						before := f.effects(nil)
						resp, body := f.send(t, e, a.request)
						check(t, f, e, before, resp, body)
					})
				}
			}
		})
	}
}

func TestStateChangingEndpointsRefuseCrossOriginRequests(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	attacks := []namedRequest{
		{"a form posted from another site", request{header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", "Content-Type": form}, credentials: true}},
		{"a form posted from another port of the same host", request{header: map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1", "Content-Type": form}, credentials: true}},
		{"a post from another origin by a browser without Sec-Fetch-Site", request{header: map[string]string{"Origin": "https://evil.example"}, credentials: true}},
		{"a post from an opaque origin (Origin: null)", request{header: map[string]string{"Origin": "null"}, credentials: true}},
		{"a post from a sandboxed frame on another site", request{header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "null"}, credentials: true}},
		{"a text/plain fetch from another site", request{header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", "Content-Type": "text/plain"}, credentials: true}},
		{"a post from another site asking to be taken as a GET", request{header: map[string]string{"Origin": "https://evil.example", "X-HTTP-Method-Override": "GET"}, query: "_method=GET", credentials: true}},
		{"a post from another site over plain HTTP, where Sec-Fetch-Site is not sent", request{header: map[string]string{"Origin": "http://evil.example:9466"}, credentials: true}},
	}
	eachStateChange(t, attacks, "refused", func(t *testing.T, f *securityFixture, e endpoint, before int, resp *http.Response, body string) {
		if resp.StatusCode != http.StatusForbidden || f.effects(resp) != before {
			t.Fatalf("%s %s: %d, %d effects, want 403 and none: %s", e.method, e.path, resp.StatusCode, f.effects(resp)-before, body)
		}
		if !strings.Contains(body, "cross-origin") {
			t.Fatalf("the refusal does not say why: %s", body)
		}
	})
}

func TestStateChangingEndpointsServeTheirOwnOriginAndOtherClients(t *testing.T) {
	allowed := []namedRequest{
		{"a client that is not a browser (no Origin, no Sec-Fetch-Site: curl)", request{credentials: true}},
		{"the server's own page", request{header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "{server}"}, credentials: true}},
		{"the server's own page in a browser without Sec-Fetch-Site", request{header: map[string]string{"Origin": "{server}"}, credentials: true}},
		{"the server's own page at http://localhost", request{header: map[string]string{"Origin": "http://localhost:{port}"}, host: "localhost:{port}", credentials: true}},
	}
	eachStateChange(t, allowed, "served", func(t *testing.T, f *securityFixture, e endpoint, before int, resp *http.Response, body string) {
		if resp.StatusCode >= 400 || f.effects(resp) == before {
			t.Fatalf("%s %s: %d and no effect: %s", e.method, e.path, resp.StatusCode, body)
		}
	})
}

func (f *securityFixture) port() string {
	return fmt.Sprint(f.srv.Listener.Addr().(*net.TCPAddr).Port)
}

// A page whose DNS name is made to resolve to 127.0.0.1 (DNS rebinding)
// is the server's own origin to the browser: Origin and Host agree. Without
// an admin token, writes must be addressed to the server by an IP address,
// localhost or a trusted origin's name.
func TestWritesThroughAReboundDNSNameAreRefusedWithoutAToken(t *testing.T) {
	for _, e := range stateChanging {
		t.Run(e.name+" is refused", func(t *testing.T) {
			f := newSecurityFixture(t, "")
			rebound := "rebound.example:" + f.port()
			before := f.effects(nil)
			resp, body := f.send(t, e, request{header: map[string]string{"Origin": "http://" + rebound}, host: rebound, credentials: true})
			if resp.StatusCode != http.StatusForbidden || f.effects(resp) != before || !strings.Contains(body, "rebound.example") {
				t.Fatalf("%s %s: %d, %d effects: %s", e.method, e.path, resp.StatusCode, f.effects(resp)-before, body)
			}
		})
	}
	t.Run("a client that is not a browser may use any name", func(t *testing.T) {
		f := newSecurityFixture(t, "")
		resp, body := f.send(t, stateChanging[0], request{host: "callwatch.internal:" + f.port()})
		if resp.StatusCode != 200 || f.reloads.Load() != 1 {
			t.Fatalf("reload by name from curl: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("with an admin token the name does not matter, the token does", func(t *testing.T) {
		f := newSecurityFixture(t, "s3cret")
		rebound := "rebound.example:" + f.port()
		resp, body := f.send(t, stateChanging[0], request{header: map[string]string{"Origin": "http://" + rebound}, host: rebound, credentials: true})
		if resp.StatusCode != 200 || f.reloads.Load() != 1 {
			t.Fatalf("reload with the token by name: %d %s", resp.StatusCode, body)
		}
		resp, _ = f.send(t, stateChanging[0], request{header: map[string]string{"Origin": "http://" + rebound}, host: rebound})
		if resp.StatusCode != http.StatusUnauthorized || f.reloads.Load() != 1 {
			t.Fatalf("reload without the token by name: %d", resp.StatusCode)
		}
	})
}

func TestTrustedOrigins(t *testing.T) {
	trust := func(o *Options) { o.TrustedOrigins = []string{"https://callwatch.example.com"} }
	for _, tc := range []struct {
		name   string
		req    request
		status int
	}{
		{"a page of the external URL behind a proxy that rewrites Host is served",
			request{header: map[string]string{"Origin": "https://callwatch.example.com"}}, 200},
		{"a page of the external URL is served when Host is the external name",
			request{header: map[string]string{"Origin": "https://callwatch.example.com", "Sec-Fetch-Site": "same-origin"}, host: "callwatch.example.com"}, 200},
		{"another origin is still refused",
			request{header: map[string]string{"Origin": "https://other.example.com", "Sec-Fetch-Site": "cross-site"}}, 403},
		{"the external URL's host over another scheme is refused",
			request{header: map[string]string{"Origin": "http://callwatch.example.com"}}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSecurityFixture(t, "", trust)
			resp, body := f.send(t, stateChanging[0], tc.req)
			if resp.StatusCode != tc.status || (tc.status == 200) != (f.reloads.Load() == 1) {
				t.Fatalf("%d (reloads %d), want %d: %s", resp.StatusCode, f.reloads.Load(), tc.status, body)
			}
		})
	}
}

func TestSafeMethodsChangeNothing(t *testing.T) {
	f := newSecurityFixture(t, "")
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
	}{
		{"HEAD /-/reload", "HEAD", "/-/reload", nil},
		{"OPTIONS /-/reload", "OPTIONS", "/-/reload", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}},
		{"GET /-/reload asking to be taken as a POST", "GET", "/-/reload?_method=POST", map[string]string{"X-HTTP-Method-Override": "POST", "X-HTTP-Method": "POST"}},
		{"GET /api/v1/silences with a silence in the query", "GET", `/api/v1/silences?matchers={alertname=~".%2B"}&duration=1h`, nil},
		{"GET /ui/login with a name", "GET", "/ui/login?user=mallory", nil},
		{"OPTIONS /api/v1/silences", "OPTIONS", "/api/v1/silences", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.effects(nil)
			req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := noRedirects().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if f.effects(resp) != before || len(f.sil.List(f.clock())) != 1 {
				t.Fatalf("%s %s changed state (%d)", tc.method, tc.path, resp.StatusCode)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("CORS allowed: %v", resp.Header)
			}
		})
	}
}

func TestAdminToken(t *testing.T) {
	for _, tc := range []struct {
		name, configured string
		header           map[string]string
		want             int
	}{
		{"the bearer token is accepted", "s3cret", map[string]string{"Authorization": "Bearer s3cret"}, 200},
		{"the scheme of Authorization is case-insensitive", "s3cret", map[string]string{"Authorization": "bearer s3cret"}, 200},
		{"the token header is accepted while basic auth holds Authorization", "s3cret",
			map[string]string{AdminTokenHeader: "s3cret", "Authorization": "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ="}, 200},
		{"an empty bearer is refused", "s3cret", map[string]string{"Authorization": "Bearer "}, 401},
		{"a bare Bearer is refused", "s3cret", map[string]string{"Authorization": "Bearer"}, 401},
		{"an empty token header is refused", "s3cret", map[string]string{AdminTokenHeader: ""}, 401},
		{"a prefix of the token is refused", "s3cret", map[string]string{"Authorization": "Bearer s3cre"}, 401},
		{"the token and more is refused", "s3cret", map[string]string{"Authorization": "Bearer s3crets"}, 401},
		{"the token as a basic-auth password is refused", "s3cret", map[string]string{"Authorization": "Basic YWxpY2U6czNjcmV0"}, 401},
		{"a wrong token in both places is refused", "s3cret",
			map[string]string{AdminTokenHeader: "nope", "Authorization": "Bearer nope"}, 401},
		{"a configured token read with its newline still matches", "s3cret\n", map[string]string{"Authorization": "Bearer s3cret"}, 200},
		{"a blank configured token is no token: requests are served as without one", " \n", nil, 200},
		{"an empty configured token is no token: an empty bearer changes nothing", "", map[string]string{"Authorization": "Bearer "}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reloads atomic.Int64
			srv := newServer(t, Handler(Options{Rules: staticRules{}, AdminToken: tc.configured,
				Reload: func(context.Context) error { reloads.Add(1); return nil }}))
			req, _ := http.NewRequest("POST", srv+"/-/reload", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, body := do(t, http.DefaultClient, req)
			if resp.StatusCode != tc.want || (tc.want == 200) != (reloads.Load() == 1) {
				t.Fatalf("%d (reloads %d), want %d: %s", resp.StatusCode, reloads.Load(), tc.want, body)
			}
			if tc.want == 401 && !strings.Contains(body, AdminTokenHeader) {
				t.Fatalf("the refusal does not name the token header: %s", body)
			}
		})
	}
	t.Run("a blank configured token does not ask for a token on the page", func(t *testing.T) {
		f := newPageFixture(t, "  ")
		_, body := fetch(t, browser(t), f.srv.URL+"/")
		if strings.Contains(body, `name="token"`) {
			t.Fatal("the page asks for a blank token")
		}
	})
}

func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// aliceHash is bcrypt("alice-password"), for basic_auth_users.
const aliceHash = "$2a$04$Fpw8iMNFewLRS4xkXlOm7.fq5JHfliUeYUfufhMneLgfTuBOenXra"

// With TLS and basic auth from --web.config.file, the admin token goes in
// its own header: Authorization carries the basic-auth credentials.
func TestAdminTokenBehindBasicAuthAndTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	webConfig := filepath.Join(dir, "web.yml")
	cfg := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  alice: %s\n", certFile, keyFile, aliceHash)
	if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var reloads atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(Options{Rules: staticRules{}, AdminToken: "s3cret",
		Reload: func(context.Context) error { reloads.Add(1); return nil }})}
	addr := ln.Addr().String()
	// As serve.go starts it.
	go toolkitweb.Serve(ln, srv, &toolkitweb.FlagConfig{WebListenAddresses: &[]string{addr}, WebConfigFile: &webConfig}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, tc := range []struct {
		name          string
		user, pass    string
		header        map[string]string
		status, total int64
	}{
		{"basic auth and the token header reload", "alice", "alice-password", map[string]string{AdminTokenHeader: "s3cret"}, 200, 1},
		{"basic auth alone is refused by the token check", "alice", "alice-password", nil, 401, 1},
		{"basic auth and a wrong token header is refused", "alice", "alice-password", map[string]string{AdminTokenHeader: "nope"}, 401, 1},
		{"the token without basic auth is refused by basic auth", "", "", map[string]string{"Authorization": "Bearer s3cret"}, 401, 1},
		{"the token header without basic auth is refused by basic auth", "", "", map[string]string{AdminTokenHeader: "s3cret"}, 401, 1},
		{"a wrong basic-auth password with the token header is refused", "alice", "guess", map[string]string{AdminTokenHeader: "s3cret"}, 401, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "https://"+addr+"/-/reload", nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, body := do(t, client, req)
			if int64(resp.StatusCode) != tc.status || reloads.Load() != tc.total {
				t.Fatalf("%d (reloads %d), want %d (%d): %s", resp.StatusCode, reloads.Load(), tc.status, tc.total, body)
			}
		})
	}
	t.Run("reading needs basic auth only", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "https://"+addr+"/api/v1/alerts", nil)
		req.SetBasicAuth("alice", "alice-password")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /api/v1/alerts: %d", resp.StatusCode)
		}
	})
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "callwatch test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestWritesExposed(t *testing.T) {
	for _, tc := range []struct {
		address, token string
		exposed        bool
	}{
		{"127.0.0.1:9466", "", false},
		{"127.0.0.2:9466", "", false},
		{"localhost:9466", "", false},
		{"LocalHost:9466", "", false},
		{"[::1]:9466", "", false},
		{"[::ffff:127.0.0.1]:9466", "", false},
		{":9466", "", true},
		{"0.0.0.0:9466", "", true},
		{"[::]:9466", "", true},
		{"10.1.2.3:9466", "", true},
		{"[fe80::1%eth0]:9466", "", true},
		{"callwatch.internal:9466", "", true},
		{"localhost.evil.example:9466", "", true},
		{"9466", "", true},
		{"0.0.0.0:9466", "s3cret", false},
		{":9466", "s3cret", false},
		{"0.0.0.0:9466", " \n", true},
	} {
		name := fmt.Sprintf("%s %s the writes to other hosts", tc.address, map[bool]string{true: "opens", false: "does not open"}[tc.exposed])
		if tc.token != "" {
			name += fmt.Sprintf(" with the token %q", tc.token)
		}
		t.Run(name, func(t *testing.T) {
			if got := WritesExposed(tc.address, tc.token); got != tc.exposed {
				t.Fatalf("WritesExposed(%q, %q) = %v", tc.address, tc.token, got)
			}
		})
	}
}

// The check runs before routing: no path spelling, method or route added
// later gets a cross-site write past it. Handler is the server's root
// handler here, as in serve.go, so nothing cleans the path before it.
func TestEveryUnsafeMethodOnEveryPathIsChecked(t *testing.T) {
	f := newSecurityFixture(t, "")
	srv := newServer(t, Handler(Options{Rules: f.mgr, Actions: f.mgr, Silences: f.sil, History: f.audit, Now: f.clock,
		Reload: func(context.Context) error { f.reloads.Add(1); return nil }}))
	for _, tc := range []struct{ method, path string }{
		{"POST", "//-/reload"},
		{"POST", "/-/reload/"},
		{"POST", "/./-/reload"},
		{"POST", "/%2D/reload"},
		{"PATCH", "/-/reload"},
		{"post", "/-/reload"},
		// Prometheus' read-only query endpoints take a form POST from any
		// origin (TestCrossOriginQueriesAreAnsweredAsPrometheusDoes); other
		// spellings of their paths are not exempt.
		{"POST", "/api/v1/query/?query=count_over_time(events[31d])"},
		{"POST", "//api/v1/query?query=count_over_time(events[31d])"},
		{"POST", "/ui/logout"},
		{"PATCH", "/api/v1/silences"},
		{"DELETE", "/api/v1/alerts/" + "{fp}"},
		{"POST", "/no/such/route"},
	} {
		t.Run(tc.method+" "+tc.path+" from another site is refused", func(t *testing.T) {
			before := f.effects(nil)
			req, err := http.NewRequest(tc.method, srv+strings.ReplaceAll(tc.path, "{fp}", f.fp), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", "https://evil.example")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			resp, err := noRedirects().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || f.effects(resp) != before {
				t.Fatalf("%s %s: %d", tc.method, tc.path, resp.StatusCode)
			}
		})
	}
}
