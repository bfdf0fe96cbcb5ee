package emulator

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// The apps the emulator runs are whatever was deployed: they must be
// reachable from this machine only, and must not outlive the emulator.

// ownerEnv marks every app process with the emulator that started it
// (its pid), so a later start can find the ones a killed emulator left.
const ownerEnv = "DJDEPLOY_EMULATOR_OWNER"

// anyHost matches a bind to every interface in a startup command:
// 0.0.0.0, [::], or an empty host after gunicorn's --bind/-b (":8000").
var anyHost = regexp.MustCompile(`0\.0\.0\.0|\[::\]|((?:--bind[= ]|-b ?)['"]?):`)

// bindLoopback rewrites a startup command's binds to 127.0.0.1. App
// Service's own startup commands bind 0.0.0.0:$PORT (its container is the
// boundary); here the host is the developer's machine.
func bindLoopback(command string) string {
	return anyHost.ReplaceAllStringFunc(command, func(m string) string {
		if strings.HasSuffix(m, ":") && m != "0.0.0.0" {
			return strings.TrimSuffix(m, ":") + "127.0.0.1:"
		}
		return "127.0.0.1"
	})
}

// exposedListeners returns the non-loopback addresses listening on port
// (from /proc/net/tcp and tcp6), e.g. "0.0.0.0:8000": what an app bound
// despite the rewrite.
func exposedListeners(port int) []string {
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A = LISTEN
				continue
			}
			host, p, ok := strings.Cut(fields[1], ":")
			pn, err := strconv.ParseUint(p, 16, 16)
			if !ok || err != nil || int(pn) != port {
				continue
			}
			ip := procIP(host)
			if ip != nil && !ip.IsLoopback() {
				out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
			}
		}
	}
	return out
}

// procIP decodes /proc/net's hex address: 32-bit words in host (little
// endian) order.
func procIP(h string) net.IP {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil
	}
	ip := make(net.IP, len(b))
	for i := 0; i < len(b); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return ip
}

// stopOrphans finds app processes of an earlier emulator that is gone
// (killed before it could stop them; they may still listen), stops their
// process groups and returns what it found, for the start to say so.
func stopOrphans() []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	groups := map[int][]string{}
	for _, p := range procs {
		env, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		owner := 0
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte(ownerEnv+"=")); ok {
				owner, _ = strconv.Atoi(string(v))
			}
		}
		if owner <= 0 || owner == os.Getpid() || syscall.Kill(owner, 0) == nil {
			continue // not an app, ours, or its emulator still runs
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pgid, err := syscall.Getpgid(pid)
		if err != nil || pgid <= 1 {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		groups[pgid] = append(groups[pgid], fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))))
	}
	var found []string
	for pgid, ps := range groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		found = append(found, ps...)
	}
	sort.Strings(found)
	return found
}
