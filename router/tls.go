package router

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

// TLSConfig returns the configuration of the HTTPS listener. Its certificates
// are signed by Options.CA on the first handshake for each host and cached;
// with Options.ACME, those of hosts that are not local come from the ACME
// CA, and the CA's tls-alpn-01 validations are answered too. Only hosts in
// the route table get one: a handshake for any other name, or with no name
// (SNI) at all, fails, so that a client cannot make the rack sign names of
// its choosing, nor have it order certificates for them.
func (rt *Router) TLSConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if rt.acme != nil {
		protos = append(protos, acme.ALPNProto)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: rt.getCertificate,
	}
}

func (rt *Router) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if rt.acme != nil && isChallengeHello(hello) {
		// Answered only while an order of ours waits on this validation.
		return rt.acme.m.GetCertificate(hello)
	}
	host := canonicalHost(hello.ServerName)
	switch {
	case host == "":
		return nil, errors.New("router: the client sent no server name (SNI)")
	case rt.table.Load().hosts[host] == nil:
		return nil, fmt.Errorf("router: no service is routed at host %q", host)
	}
	if rt.acme != nil && !rt.isLocal(host) {
		if cert := rt.acme.certificate(hello, host); cert != nil {
			return cert, nil
		}
	}
	if rt.ca == nil {
		return nil, errors.New("router: no CA to sign certificates with")
	}
	return rt.certs.get(host, rt.ca)
}

// certCache holds the certificates signed so far, by host. Entries are only
// ever made for routed hosts, so it stays as small as the route table.
type certCache struct {
	mu sync.Mutex
	m  map[string]*tls.Certificate // by host; made by New
}

// get returns the cached certificate for host, signing a new one if there is
// none or two thirds of its life have passed. Signing holds the lock: it takes well under a
// millisecond, and concurrent first handshakes for one host then share one
// certificate.
func (c *certCache) get(host string, ca *CA) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert := c.m[host]; cert != nil {
		leaf := cert.Leaf
		if time.Now().Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)) {
			return cert, nil
		}
	}
	cert, err := ca.sign(host)
	if err != nil {
		return nil, err
	}
	c.m[host] = cert
	return cert, nil
}
