package router

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// CA is the rack's own certificate authority. It signs a certificate for
// every routed host on demand, so HTTPS works with no DNS or ACME set-up; a
// user who trusts the CA certificate (`convox rack ca`) gets no warnings.
//
// Whoever holds its key can impersonate any site to the machines that trust
// it: the key never leaves the rack home, which only its owner can read.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// Files of the CA in the directory given to LoadOrCreateCA.
const (
	CACertFile = "ca.crt" // the certificate, PEM; public
	CAKeyFile  = "ca.key" // the private key, PKCS #8 PEM; mode 0600
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 90 * 24 * time.Hour
	// clockSkew backdates certificates so that a client whose clock is a
	// little behind does not reject a certificate signed a moment ago.
	clockSkew = time.Hour
)

// LoadOrCreateCA loads the CA from dir, or creates it there on first use: an
// ECDSA P-256 key and a self-signed certificate valid for ten years, named
// "convox local rack CA". If a crash left the key without its certificate,
// the certificate is made again from the key; a certificate without its key
// is an error, as is an expired CA: remove both files to start over.
func LoadOrCreateCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(certPath); err == nil {
			return nil, fmt.Errorf("loading the rack CA: %s exists but %s does not: remove %[1]s to create a new CA", certPath, keyPath)
		}
		return createCA(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the rack CA: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading the rack CA: %s: %w", keyPath, err)
	}

	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return newCA(dir, key)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the rack CA: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("loading the rack CA: %s: %w", certPath, err)
	}
	switch {
	case !cert.IsCA:
		return nil, fmt.Errorf("loading the rack CA: %s is not a CA certificate", certPath)
	case !key.PublicKey.Equal(cert.PublicKey):
		return nil, fmt.Errorf("loading the rack CA: %s does not belong to %s", keyPath, certPath)
	case time.Now().After(cert.NotAfter):
		return nil, fmt.Errorf("loading the rack CA: it expired on %s: remove %s and %s to create a new one",
			cert.NotAfter.Format(time.DateOnly), certPath, keyPath)
	}
	return &CA{cert: cert, key: key, pem: certPEM}, nil
}

// createCA makes a new key and certificate in dir.
func createCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the rack CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("creating the rack CA: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("creating the rack CA: %w", err)
	}
	// The key is written first: see LoadOrCreateCA for how a crash before
	// the certificate is written is recovered.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("creating the rack CA: %w", err)
	}
	return newCA(dir, key)
}

// newCA self-signs a CA certificate for key and writes it to dir.
func newCA(dir string, key *ecdsa.PrivateKey) (*CA, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject: pkix.Name{
			CommonName:         "convox local rack CA",
			Organization:       []string{"convox"},
			OrganizationalUnit: []string{hostname()},
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves only, never another CA.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the rack CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("creating the rack CA: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFileAtomic(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("creating the rack CA: %w", err)
	}
	return &CA{cert: cert, key: key, pem: certPEM}, nil
}

// PEM returns the CA certificate in PEM form, for users to trust.
func (ca *CA) PEM() []byte {
	return bytes.Clone(ca.pem)
}

// sign issues a certificate for host, valid for 90 days (never beyond the
// CA), with a key of its own.
func (ca *CA) sign(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate for %s: %w", host, err)
	}
	now := time.Now()
	notAfter := now.Add(leafValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate for %s: %w", host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("want an ECDSA key, got %T", key)
		}
		return ec, nil
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	}
	return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
}

func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func serialNumber() *big.Int {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand documentation)
	return new(big.Int).SetBytes(b)
}

// hostname tells racks apart in a trust store that holds several CAs.
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "unknown host"
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so that path is never seen half-written.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
