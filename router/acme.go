package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACME directories of Let's Encrypt.
const (
	LetsEncryptDirectory        = autocert.DefaultACMEDirectory
	LetsEncryptStagingDirectory = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// ACMEOptions turn on certificates from an ACME CA, such as Let's Encrypt,
// for the routed hosts that are not the rack's own (Options.LocalDomains):
// the `domain:` names of services, which the world reaches through public
// DNS. Setting them accepts the CA's terms of service.
//
// A certificate is obtained on the first TLS handshake for its host, which
// waits for it (a few seconds), and is kept in CacheDir, so that a restart
// reuses it. The CA validates the host with tls-alpn-01, answered on the
// HTTPS listener, and then, if that failed, with http-01, answered on the
// plain-HTTP listener: either needs the host's public DNS to point at the
// rack and port 443 or port 80 to reach the router. Certificates in use are
// renewed in the background before they expire, at the lesser of 30 days
// or a third of their life ahead, and renewal is retried every 30 to 60
// minutes while it fails. A certificate kept in CacheDir is renewed the
// same way from its first handshake after a start, or obtained anew there
// and then if it has expired.
//
// When no certificate can be had, or the one in use expired because
// renewal kept failing, the handshake gets one signed by Options.CA
// instead, so the site keeps working with a warning in the browser, and
// the router logs the failure, once per try. It tries again at a handshake
// after a minute, then after twice as long each time up to an hour, so a
// host whose DNS points elsewhere does not exhaust the CA's rate limits.
type ACMEOptions struct {
	// DirectoryURL is the CA's ACME directory; empty means
	// LetsEncryptDirectory.
	DirectoryURL string
	// Email is the contact address of the ACME account, to which the CA may
	// send notices about certificates; empty registers none.
	Email string
	// CacheDir keeps the account key and the certificates with their keys;
	// it is created with mode 0700. Empty keeps them in memory only, which
	// asks the CA for new certificates at every start: only for tests.
	CacheDir string
	// HTTPClient talks to the CA; nil means http.DefaultClient. Tests set it
	// to trust the test CA's HTTPS certificate.
	HTTPClient *http.Client
}

const (
	// acmeRetryMin and acmeRetryMax bound the wait after a failure to get a
	// certificate, during which handshakes get the rack CA's.
	acmeRetryMin = time.Minute
	acmeRetryMax = time.Hour
)

// acmeCerts gets and renews certificates from an ACME CA. Its manager
// starts timers of its own, one per host in use, to renew certificates.
type acmeCerts struct {
	log *slog.Logger
	m   *autocert.Manager
	// challenge answers http-01 validation requests.
	challenge http.Handler

	mu    sync.Mutex
	hosts map[string]*acmeHost // by host; made by newACME
}

// acmeHost is what the router remembers of one host's ACME certificate.
type acmeHost struct {
	failures int       // since the last success
	retryAt  time.Time // handshakes before get the rack CA's certificate
	serial   string    // of the certificate last served, to log a new one once
}

func (rt *Router) newACME(o *ACMEOptions) *acmeCerts {
	client := &acme.Client{DirectoryURL: o.DirectoryURL, HTTPClient: o.HTTPClient}
	if client.DirectoryURL == "" {
		client.DirectoryURL = LetsEncryptDirectory
	}
	m := &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Client: client,
		Email:  o.Email,
		HostPolicy: func(_ context.Context, host string) error {
			host = canonicalHost(host)
			switch {
			case rt.isLocal(host):
				return fmt.Errorf("router: %q is a host of the rack: its certificate comes from the rack CA", host)
			case rt.table.Load().hosts[host] == nil:
				return fmt.Errorf("router: no service is routed at host %q", host)
			}
			return nil
		},
	}
	if o.CacheDir != "" {
		// DirCache creates the directory with mode 0700 too, but only at
		// its first write: made now, a mistake shows at start.
		if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
			rt.log.Warn("cannot create the ACME cache; certificates will be requested again at every start", "dir", o.CacheDir, "error", err)
		} else {
			m.Cache = autocert.DirCache(o.CacheDir)
		}
	}
	// HTTPHandler also tells the manager to offer http-01 validations; its
	// fallback is never called, as ServeHTTP only hands it challenges.
	return &acmeCerts{log: rt.log, m: m, challenge: m.HTTPHandler(nil), hosts: map[string]*acmeHost{}}
}

// isLocal reports whether host is the rack's own, never to be asked of an
// ACME CA: under Options.LocalDomains or "localhost" (rt.localDomains holds
// both), an IP address, or a name of a single label.
func (rt *Router) isLocal(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil || !strings.Contains(host, ".") {
		return true
	}
	return rt.underLocalDomain(host)
}

// serveChallenge answers an http-01 validation request of the ACME CA for a
// host of the router, reporting whether it did. Any other request, such as
// one for a token the router did not ask for, is left to the route: an app
// may answer challenges of its own, for certificates it uses elsewhere.
func (a *acmeCerts) serveChallenge(w http.ResponseWriter, r *http.Request) bool {
	rec := &challengeRecorder{header: http.Header{}, code: http.StatusOK}
	a.challenge.ServeHTTP(rec, r)
	if rec.code != http.StatusOK {
		return false
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(rec.body.Bytes())
	return true
}

// challengeRecorder keeps the answer of the challenge handler, a few bytes.
type challengeRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (c *challengeRecorder) Header() http.Header         { return c.header }
func (c *challengeRecorder) WriteHeader(code int)        { c.code = code }
func (c *challengeRecorder) Write(b []byte) (int, error) { return c.body.Write(b) }

// isChallengeHello reports whether hello is a tls-alpn-01 validation by an
// ACME CA, which offers that protocol alone.
func isChallengeHello(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto
}

// certificate returns the ACME certificate of host, obtaining it if need be,
// or nil when there is none to be had now: the caller then serves the rack
// CA's. host is canonical, routed and not local.
func (a *acmeCerts) certificate(hello *tls.ClientHelloInfo, host string) *tls.Certificate {
	a.mu.Lock()
	h := a.hosts[host]
	if h == nil {
		h = &acmeHost{}
		a.hosts[host] = h
	}
	waiting := time.Now().Before(h.retryAt)
	a.mu.Unlock()
	if waiting {
		return nil
	}

	canon := *hello
	canon.ServerName = host
	cert, err := a.m.GetCertificate(&canon)
	now := time.Now()
	if err == nil && cert.Leaf != nil && now.After(cert.Leaf.NotAfter) {
		// The manager keeps serving a certificate it failed to renew.
		err = fmt.Errorf("the certificate expired on %s and could not be renewed", cert.Leaf.NotAfter.Format(time.DateOnly))
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if now.Before(h.retryAt) {
			// A handshake that waited on the same attempt recorded it.
			return nil
		}
		wait := acmeRetryMax
		if h.failures < 6 { // 1 minute << 6 is over the hour
			wait = min(acmeRetryMin<<h.failures, acmeRetryMax)
		}
		h.failures++
		h.retryAt = now.Add(wait)
		a.log.Warn("no certificate from the ACME CA; serving one of the rack CA until the next try",
			"host", host, "error", err, "retry_after", wait,
			"hint", "the host's public DNS must point at this machine, and port 80 or 443 reach the router")
		return nil
	}
	h.failures, h.retryAt = 0, time.Time{}
	if cert.Leaf != nil {
		if serial := cert.Leaf.SerialNumber.String(); serial != h.serial {
			h.serial = serial
			a.log.Info("serving a certificate from the ACME CA", "host", host,
				"issuer", cert.Leaf.Issuer.CommonName, "expires", cert.Leaf.NotAfter.Format(time.DateOnly))
		}
	}
	return cert
}
