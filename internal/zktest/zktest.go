// Package zktest starts a private ZooKeeper for tests: the one that keeps
// the replicated tables and the ON CLUSTER queue of a ClickHouse cluster
// (chtest.StartCluster). It runs Debian's zookeeper package (apt-get
// install zookeeper, which `make deps` does) as a standalone server
// (org.apache.zookeeper.server.ZooKeeperServerMain, without zkServer.sh),
// with its own data directory, on a free port of 127.0.0.1, and is killed
// when the test ends. Without it the test is skipped, or fails when
// CI=true.
package zktest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
)

// ErrNotInstalled is returned by StartServer when java or ZooKeeper's jar
// is missing.
var ErrNotInstalled = errors.New("ZooKeeper is not installed: `make deps` installs it (apt-get install zookeeper)")

// jar is where Debian's zookeeper package puts ZooKeeper; its manifest
// names the jars it needs. logJar, when installed (Debian's libslf4j-java,
// a dependency), sends ZooKeeper's log to its output, which the log file
// keeps.
const (
	jar    = "/usr/share/java/zookeeper.jar"
	logJar = "/usr/share/java/slf4j-simple.jar"
)

// StartTimeout bounds how long ZooKeeper may take to serve (a JVM
// starting on a loaded machine).
const StartTimeout = 60 * time.Second

// Server is a running private ZooKeeper.
type Server struct {
	// Addr is the client address, 127.0.0.1:PORT.
	Addr string
	// Host and Port are Addr's parts, as a ClickHouse <zookeeper> node
	// names them.
	Host string
	Port int
	// Dir holds the configuration, the data and the log.
	Dir string

	proc *proctest.Proc
}

// Start starts ZooKeeper for one test and kills it when the test ends.
// When it is not installed it skips the test, or fails it when the
// environment variable CI is "true".
func Start(t testing.TB) *Server {
	t.Helper()
	return proctest.ForTest(t, ErrNotInstalled, StartServer)
}

// StartServer starts ZooKeeper with its files under dir. The caller must
// Close it. It returns ErrNotInstalled when java or the jar is missing.
func StartServer(dir string) (*Server, error) {
	java, err := proctest.Binary(ErrNotInstalled, "java")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(jar); err != nil {
		return nil, ErrNotInstalled
	}
	return proctest.Retry(func() (*Server, error) { return start(java, dir) })
}

func start(java, base string) (*Server, error) {
	port, err := proctest.FreePort()
	if err != nil {
		return nil, fmt.Errorf("start zookeeper: %w", err)
	}
	dir, err := os.MkdirTemp(base, "zookeeper-")
	if err != nil {
		return nil, fmt.Errorf("start zookeeper: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("start zookeeper: %w", err)
	}
	// A short tick: sessions of killed clients expire within seconds.
	cfg := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=srvr\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("start zookeeper: %w", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Host: "127.0.0.1", Port: port, Dir: dir}
	logPath := filepath.Join(dir, "zookeeper.log")
	classpath := jar
	if _, err := os.Stat(logJar); err == nil {
		classpath += ":" + logJar
	}
	s.proc, err = proctest.Start(dir, logPath, java, "-Xmx256m", "-cp", classpath,
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg"))
	if err != nil {
		return nil, fmt.Errorf("start zookeeper (%s): %w", java, err)
	}
	if err := s.proc.WaitReady(StartTimeout, s.serving); err != nil {
		_ = s.proc.Kill()
		return nil, fmt.Errorf("start zookeeper: %w\n%s", err, proctest.LogTail(logPath))
	}
	return s, nil
}

// serving asks ZooKeeper whether it serves sessions: the four-letter word
// srvr, which ZooKeeper answers with its mode once its database is
// loaded. (ruok is answered imok before that, and a ClickHouse server
// that connects then is dropped, and may crash.)
func (s *Server) serving() error {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("srvr")); err != nil {
		return err
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	if !strings.Contains(string(answer), "Mode: standalone") {
		return fmt.Errorf("srvr answered %q", answer)
	}
	return nil
}

// Kill kills ZooKeeper (SIGKILL), keeping its files, for outage tests;
// it is safe to call more than once.
func (s *Server) Kill() error { return s.proc.Kill() }

// Close kills ZooKeeper. Its files go with the test's directory.
func (s *Server) Close() { _ = s.proc.Kill() }
