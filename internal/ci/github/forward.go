package github

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// StartForwards relays 127.0.0.1:<port> inside the action's container to
// the runner host, for each entry of specs: "<port>" (to the same port on
// host) or "<port>=<host>:<port>". host "" means the container's default
// gateway, which is the runner on Docker's bridge network.
//
// Why: a container action runs on a Docker network, so the runner's loopback
// (where `djdeploy emulator` listens) is not its loopback, and djdeploy
// speaks plain HTTP only to loopback addresses. With the relay, the URLs the
// emulator printed work unchanged inside the container. The runner side
// exposes the ports on the bridge (see .github/workflows/ci.yml).
func StartForwards(ctx context.Context, specs []string, host string) (stop func(), err error) {
	if host == "" {
		host, err = defaultGateway("/proc/net/route")
		if err != nil {
			return nil, problem.Wrap(err, "run djdeploy in a container on a Docker bridge network, or give targets as port=host:port",
				"github-loopback-forward: cannot find the runner's address")
		}
	}
	var lns []net.Listener
	var wg sync.WaitGroup
	closeAll := func() {
		for _, l := range lns {
			_ = l.Close()
		}
		wg.Wait()
	}
	for _, spec := range specs {
		listen, target, ok := strings.Cut(spec, "=")
		if !ok {
			target = net.JoinHostPort(host, listen)
		}
		if _, err := strconv.ParseUint(listen, 10, 16); err != nil {
			closeAll()
			return nil, problem.Usagef("give ports as numbers, or port=host:port", "github-loopback-forward: %q is not a port", spec)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", listen))
		if err != nil {
			closeAll()
			return nil, problem.Wrap(err, "pick ports that are free inside the container", "github-loopback-forward: listening on 127.0.0.1:%s", listen)
		}
		lns = append(lns, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			relay(ctx, l, target)
		}()
	}
	return closeAll, nil
}

func relay(ctx context.Context, l net.Listener, target string) {
	var d net.Dialer
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); closeWrite(u); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// defaultGateway reads the IPv4 default route from /proc/net/route.
func defaultGateway(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseRoutes(f)
}

func parseRoutes(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags ...; the default route has
		// destination 00000000.
		if len(f) < 3 || f[1] != "00000000" {
			continue
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			continue
		}
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, binary.LittleEndian.Uint32(b))
		return ip.String(), nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no default route")
}
