package router

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

// TLSConfig returns the configuration of the HTTPS listener. Its certificates
// are signed by Options.CA on the first handshake for each host and cached;
// with Options.ACME, those of hosts that are not local come from the ACME
// CA, and the CA's tls-alpn-01 validations are answered too.
//
// Hosts in the route table get a certificate, and so do other names under
// the rack's own domains (Options.LocalDomains and localhost), so that a
// mistyped or removed rack host gets the router's 404 page over HTTPS, as
// over HTTP, rather than a failed handshake. A handshake for any other name,
// or with no name (SNI) at all, fails: a client cannot make the rack sign
// names outside its domains, nor have it order certificates for them.
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
	routed := rt.table.Load().hosts[host] != nil
	switch {
	case host == "":
		return nil, errors.New("router: the client sent no server name (SNI)")
	case !routed && !rt.underLocalDomain(host):
		return nil, fmt.Errorf("router: no service is routed at host %q", host)
	}
	if routed && rt.acme != nil && !rt.isLocal(host) {
		if cert := rt.acme.certificate(hello, host); cert != nil {
			return cert, nil
		}
	}
	if rt.ca == nil {
		return nil, errors.New("router: no CA to sign certificates with")
	}
	return rt.certs.get(host, rt.ca, routed)
}

// underLocalDomain reports whether host is one of the rack's own domains or
// a name under one.
func (rt *Router) underLocalDomain(host string) bool {
	for _, d := range rt.localDomains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// maxStrayCerts bounds the certificates kept for names under the rack's
// domains that no route names: any client can ask for as many of those as
// it likes.
const maxStrayCerts = 256

// certCache holds the certificates signed so far, by host: those of routed
// hosts, as many as the route table has, and at most maxStrayCerts others.
type certCache struct {
	mu     sync.Mutex
	routed map[string]*tls.Certificate
	stray  map[string]*tls.Certificate
}

// get returns the cached certificate for host, signing a new one if there is
// none or two thirds of its life have passed. Signing holds the lock: it
// takes well under a millisecond, and concurrent first handshakes for one
// host then share one certificate.
func (c *certCache) get(host string, ca *CA, routed bool) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &c.routed
	if !routed {
		m = &c.stray
	}
	if cert := (*m)[host]; cert != nil {
		leaf := cert.Leaf
		if time.Now().Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)) {
			return cert, nil
		}
	}
	cert, err := ca.sign(host)
	if err != nil {
		return nil, err
	}
	if *m == nil || (!routed && len(*m) >= maxStrayCerts) {
		*m = map[string]*tls.Certificate{}
	}
	(*m)[host] = cert
	return cert, nil
}
