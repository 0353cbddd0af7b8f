// Package proctest holds what the test-server helpers (chtest, amtest,
// promtest) share, and the free ports other tests need: free loopback
// ports, finding a server's binary, starting it with its log in its
// directory and its life tied to the test binary's, waiting until it is
// ready, retrying a start whose port was taken, and skipping a test whose
// server is not installed; and the module's root, where tests find the
// repository's files.
package proctest

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort returns one TCP port free on 127.0.0.1 right now.
func FreePort() (int, error) {
	p, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// FreeAddr returns a loopback address, 127.0.0.1:PORT, that nothing listens
// on right now (a peer that refuses connections); it fails the test when
// none is found.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
