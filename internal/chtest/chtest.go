// Package chtest starts private ClickHouse servers for tests.
//
// A server runs from a configuration written into a temporary directory
// (its own data, tmp and log paths), listens on 127.0.0.1 only, on free
// ports, and is killed when the test (or the test package) ends. It needs the
// clickhouse-server binary (Debian: apt-get install clickhouse-server
// clickhouse-client, which `make test` does); without it the tests that need
// a server are skipped, or fail when CI=true.
//
// A test package usually shares one server among all its tests:
//
//	var server = chtest.NewShared()
//
//	func TestMain(m *testing.M) { os.Exit(server.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		s := server.Get(t)   // started on first use
//		db := s.NewDatabase(t)
//		...
//	}
//
// StartCluster starts several servers that name each other in
// remote_servers, for Distributed tables over shards and, with a
// ZooKeeper (package zktest), replicated tables and ON CLUSTER statements.
package chtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/callwatch/callwatch/internal/proctest"
)

// InstallHint tells what to do when the ClickHouse binaries are missing.
const InstallHint = "ClickHouse is not installed: `make test` installs it " +
	"(apt-get install clickhouse-server clickhouse-client)"

// ErrNotInstalled is returned by StartServer when no ClickHouse server binary
// is found.
var ErrNotInstalled = errors.New(InstallHint)

// StartTimeout bounds how long a server may take to answer SELECT 1.
const StartTimeout = 30 * time.Second

// Server is a running private ClickHouse server.
type Server struct {
	// Addr is the native protocol address, 127.0.0.1:PORT.
	Addr string
	// Port and HTTPPort are the native and HTTP ports.
	Port, HTTPPort int
	// Dir holds the configuration, data and logs.
	Dir string

	proc      *proctest.Proc
	client    []string // clickhouse-client command, nil when not installed
	ownDir    bool
	closeOnce sync.Once
}

// Start starts a server for one test and kills it when the test ends. When
// ClickHouse is not installed it skips the test, or fails it when the
// environment variable CI is "true".
func Start(t testing.TB) *Server {
	t.Helper()
	return proctest.ForTest(t, ErrNotInstalled, StartServer)
}

// StartServer starts a server whose files live under dir; an empty dir means
// a new temporary directory, removed by Close. The caller must Close the
// server. It returns ErrNotInstalled when no server binary is found.
func StartServer(dir string) (*Server, error) {
	bin, err := serverCommand()
	if err != nil {
		return nil, err
	}
	ownDir := false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "chtest-"); err != nil {
			return nil, fmt.Errorf("start clickhouse: %w", err)
		}
		ownDir = true
	}
	s, err := proctest.Retry(func() (*Server, error) { return start(bin, dir) })
	if err != nil {
		if ownDir {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	s.ownDir = ownDir
	return s, nil
}

// serverCommand finds the server binary: clickhouse-server, or the
// single-binary `clickhouse server`.
func serverCommand() ([]string, error) {
	for _, name := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if p, err := exec.LookPath(name); err == nil {
			return []string{p}, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, ErrNotInstalled
}

// clientCommand finds clickhouse-client, or the single-binary `clickhouse client`.
func clientCommand() []string {
	if p, err := exec.LookPath("clickhouse-client"); err == nil {
		return []string{p}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "client"}
	}
	return nil
}

func start(bin []string, base string) (*Server, error) {
	ports, err := proctest.FreePorts(2)
	if err != nil {
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	s, err := prepare(base, ports[0], ports[1], "")
	if err != nil {
		return nil, err
	}
	if err := s.startProc(bin); err != nil {
		return nil, fmt.Errorf("start clickhouse (%s): %w", strings.Join(bin, " "), err)
	}
	return s, nil
}

// prepare writes the files of a server listening on tcpPort and httpPort
// into a new directory under base, its configuration extended by extra
// (elements of <yandex>), and returns the server, not started.
func prepare(base string, tcpPort, httpPort int, extra string) (*Server, error) {
	dir, err := os.MkdirTemp(base, "server-")
	if err != nil {
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	for _, sub := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("start clickhouse: %w", err)
		}
	}
	config := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(config, []byte(configXML(dir, tcpPort, httpPort, extra)), 0o644); err != nil {
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	return &Server{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)),
		Port:     tcpPort,
		HTTPPort: httpPort,
		Dir:      dir,
		client:   clientCommand(),
	}, nil
}

// startProc starts the server process on s.Dir's configuration, its output
// appended to log/stdout.log, and waits until it answers SELECT 1 over the
// native protocol.
func (s *Server) startProc(bin []string) error {
	args := append(bin[1:len(bin):len(bin)], "--config-file="+filepath.Join(s.Dir, "config.xml"))
	proc, err := proctest.Start(s.Dir, filepath.Join(s.Dir, "log", "stdout.log"), bin[0], args...)
	if err != nil {
		return err
	}
	s.proc = proc
	ready := func() error {
		if err := s.ping(); err != nil {
			return fmt.Errorf("no answer to SELECT 1: %w", err)
		}
		return nil
	}
	if err := proc.WaitReady(StartTimeout, ready); err != nil {
		_ = proc.Kill()
		return fmt.Errorf("%w\n%s", err, s.logTail())
	}
	return nil
}

func (s *Server) ping() error {
	conn, err := s.open("default")
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var one uint8
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// logTail returns the end of the server's output and error log, for messages.
func (s *Server) logTail() string {
	return proctest.LogTail(filepath.Join(s.Dir, "log", "stdout.log"), filepath.Join(s.Dir, "log", "err.log"))
}

// Kill kills the server (SIGKILL) and waits for it to exit, keeping its
// files, for outage tests; Restart starts it again.
func (s *Server) Kill() error { return s.proc.Kill() }

// Restart starts a killed server again on the same files and ports and
// waits until it answers.
func (s *Server) Restart() error {
	bin, err := serverCommand()
	if err != nil {
		return err
	}
	if err := s.startProc(bin); err != nil {
		return fmt.Errorf("restart clickhouse: %w", err)
	}
	return nil
}

// Close kills the server and removes its files when StartServer created the
// directory. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		// The data is thrown away, so there is nothing to shut down
		// gracefully.
		_ = s.proc.Kill()
		if s.ownDir {
			os.RemoveAll(filepath.Dir(s.Dir))
		}
	})
}

// DSN returns the clickhouse:// address of database db, for clickhouse-go's
// ParseDSN and for callwatch's configuration.
func (s *Server) DSN(db string) string {
	return "clickhouse://" + s.Addr + "/" + db
}

func (s *Server) open(db string) (driver.Conn, error) {
	return chgo.Open(&chgo.Options{
		Addr:        []string{s.Addr},
		Auth:        chgo.Auth{Database: db, Username: "default"},
		DialTimeout: 5 * time.Second,
	})
}

// Conn opens a native clickhouse-go connection to database db, closed when
// the test ends.
func (s *Server) Conn(t testing.TB, db string) driver.Conn {
	t.Helper()
	conn, err := s.open(db)
	if err != nil {
		t.Fatalf("connect to clickhouse: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Exec runs one statement (DDL, or INSERT ... SELECT) and fails the test on
// error.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if err := s.exec(sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) exec(sql string, args ...any) error {
	conn, err := s.open("default")
	if err != nil {
		return fmt.Errorf("connect to clickhouse: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("exec %q: %w", sql, err)
	}
	return nil
}

// NewDatabase creates a database with a fresh name (test_<random>), dropped
// when the test ends, and returns its name.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := newDatabaseName(t)
	s.Exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { _ = s.exec("DROP DATABASE IF EXISTS " + name) })
	return name
}

// newDatabaseName returns a fresh database name, test_<random>.
func newDatabaseName(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "test_" + hex.EncodeToString(b[:])
}

// InsertJSONEachRow loads rows into db.table by piping them, as JSONEachRow,
// into clickhouse-client: the fast and robust path on every server version
// (clickhouse-go's batch insert does not work against 18.16). Keys are
// column names; missing columns get their default. A time.Time value is
// written as unix seconds, which a DateTime column accepts.
func (s *Server) InsertJSONEachRow(t testing.TB, db, table string, rows []map[string]any) {
	t.Helper()
	if err := s.insertJSONEachRow(db, table, rows); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) insertJSONEachRow(db, table string, rows []map[string]any) error {
	if len(rows) == 0 {
		return nil
	}
	if s.client == nil {
		return fmt.Errorf("insert into %s.%s: clickhouse-client not found: %w", db, table, ErrNotInstalled)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, row := range rows {
		r := make(map[string]any, len(row))
		for k, v := range row {
			switch v := v.(type) {
			case time.Time:
				r[k] = v.Unix()
			case *time.Time:
				r[k] = v.Unix()
			default:
				r[k] = v
			}
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("insert into %s.%s: encode row: %w", db, table, err)
		}
	}
	query := fmt.Sprintf("INSERT INTO %s.%s FORMAT JSONEachRow", quoteIdent(db), quoteIdent(table))
	args := append(s.client[1:len(s.client):len(s.client)],
		"--host", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--query", query)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.client[0], args...)
	cmd.Stdin = &buf
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("insert into %s.%s: %w: %s", db, table, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func quoteIdent(name string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(name) + "`"
}

// configXML is the smallest server configuration that keeps every file in
// dir and opens nothing but the native and HTTP ports on 127.0.0.1, plus
// extra (elements of the root: a cluster's). The root element is <yandex>,
// which 18.16 requires and current releases still accept.
func configXML(dir string, tcpPort, httpPort int, extra string) string {
	return fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>%[1]s/log/server.log</log>
        <errorlog>%[1]s/log/err.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <http_port>%[3]d</http_port>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
%[4]s</yandex>
`, dir, tcpPort, httpPort, extra)
}

// usersXML lets the default user in from loopback. Its profile shortens
// how long an ALTER of a replicated table waits for a replica to apply it
// (replication_alter_columns_timeout, 60 s by default), so that a test
// with a replica down does not wait a minute for each.
const usersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <replication_alter_columns_timeout>5</replication_alter_columns_timeout>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default></default>
    </quotas>
</yandex>
`

// Pause stops the server process (SIGSTOP): it keeps its connections and
// ports but answers nothing, like a hung server.
func (s *Server) Pause() error { return s.proc.Signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.proc.Signal(syscall.SIGCONT) }
