package emulator

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// authorityCert is the emulator's own certificate authority and the
// loopback server certificate it signs. The CA is written to a PEM file
// that the toolkit trusts only through its explicit ca-file setting.
type authorityCert struct {
	caPEM  []byte
	server tls.Certificate
}

func newAuthorityCert() (*authorityCert, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "djdeploy emulator local CA", Organization: []string{"djdeploy emulator"}},
		NotBefore:             now,
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano() + 1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now,
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating server certificate: %w", err)
	}
	return &authorityCert{
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		server: tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: nil},
	}, nil
}

func (a *authorityCert) writeCA(path string) error {
	return os.WriteFile(path, a.caPEM, 0o644)
}

// CertPool returns a pool holding only the emulator's CA (for tests).
func (a *authorityCert) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(a.caPEM)
	return p
}

// dualListener serves plain HTTP and TLS on the same loopback port: it looks
// at each connection's first byte (0x16 starts a TLS handshake). Clients may
// therefore use http:// (loopback is allowed) or https:// with the CA file,
// whichever their URL rule prefers, on every host the emulator prints.
type dualListener struct {
	net.Listener
	tls *tls.Config
}

func (l *dualListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{raw: c, tls: l.tls}, nil
}

// sniffConn decides between TLS and plain on its first read or write, so
// that Accept never blocks on a slow client.
type sniffConn struct {
	raw  net.Conn
	tls  *tls.Config
	once sync.Once
	c    net.Conn
}

type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func (s *sniffConn) sniff() {
	br := bufio.NewReader(s.raw)
	first, err := br.Peek(1)
	pc := &prefixConn{Conn: s.raw, r: br}
	if err == nil && first[0] == 0x16 && s.tls != nil {
		s.c = tls.Server(pc, s.tls)
		return
	}
	s.c = pc
}

// isTLS reports whether the connection turned out to be TLS (http.Server
// leaves Request.TLS nil for a wrapped conn).
func (s *sniffConn) isTLS() bool {
	s.once.Do(s.sniff)
	_, ok := s.c.(*tls.Conn)
	return ok
}

type connKey struct{}

// withConn is http.Server.ConnContext: it keeps the connection for
// requestTLS.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// requestTLS reports whether r came over TLS.
func requestTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	sc, ok := r.Context().Value(connKey{}).(*sniffConn)
	return ok && sc.isTLS()
}

func (s *sniffConn) Read(b []byte) (int, error)         { s.once.Do(s.sniff); return s.c.Read(b) }
func (s *sniffConn) Write(b []byte) (int, error)        { s.once.Do(s.sniff); return s.c.Write(b) }
func (s *sniffConn) Close() error                       { return s.raw.Close() }
func (s *sniffConn) LocalAddr() net.Addr                { return s.raw.LocalAddr() }
func (s *sniffConn) RemoteAddr() net.Addr               { return s.raw.RemoteAddr() }
func (s *sniffConn) SetDeadline(t time.Time) error      { return s.raw.SetDeadline(t) }
func (s *sniffConn) SetReadDeadline(t time.Time) error  { return s.raw.SetReadDeadline(t) }
func (s *sniffConn) SetWriteDeadline(t time.Time) error { return s.raw.SetWriteDeadline(t) }

// listenLoopback opens 127.0.0.1:port (0 = any free port).
func listenLoopback(port int) (net.Listener, error) {
	return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}
