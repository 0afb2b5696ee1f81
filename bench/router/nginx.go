package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/singlehost/convox/bench/internal/procfs"
	"github.com/singlehost/convox/bench/internal/rackbench"
)

// nginxConf is the baseline: nginx as a plain reverse proxy to the same
// backend process, tuned as one would for this job (upstream keepalive, no
// access log) and doing the work the router does per request (Host and
// X-Forwarded-* headers). keepalive_requests is raised on both sides: its
// default of 1000 would close wrk's connections every 1000 requests, which
// the router never does (and over TLS that would cost nginx a handshake).
var nginxConf = template.Must(template.New("nginx.conf").Parse(`# Written by bench/router for one run.
worker_processes auto;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;

    upstream backend {
        server {{.Backend}};
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen {{.HTTP}};
{{- if .HTTPS}}
        listen {{.HTTPS}} ssl;
        ssl_certificate {{.Dir}}/cert.pem;
        ssl_certificate_key {{.Dir}}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
{{- end}}
        server_name _;

        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`))

// nginx is the baseline proxy, a child process of the benchmark.
type nginx struct {
	dir         string
	http, https string // listen addresses; https empty without TLS
	cmd         *exec.Cmd
	stderr      *rackbench.SyncBuffer
	done        chan struct{}
}

// nginxBinary finds nginx on PATH or where Debian puts it (/usr/sbin is
// not on every user's PATH).
func nginxBinary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", fmt.Errorf("nginx is not installed: run bench/router/run.sh, which installs it (Debian: apt-get install nginx-light)")
}

// startNginx writes the configuration into dir and starts nginx in the
// foreground on free loopback ports, proxying to backend; with withTLS it
// also listens with TLS, with a self-signed certificate for host.
func startNginx(ctx context.Context, dir, backend, host string, withTLS bool) (*nginx, error) {
	bin, err := nginxBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := &nginx{dir: dir}
	if n.http, err = rackbench.FreeAddr(); err != nil {
		return nil, err
	}
	if withTLS {
		if n.https, err = rackbench.FreeAddr(); err != nil {
			return nil, err
		}
		if err := selfSigned(dir, host); err != nil {
			return nil, err
		}
	}
	var conf strings.Builder
	if err := nginxConf.Execute(&conf, map[string]string{
		"Dir": dir, "Backend": backend, "HTTP": n.http, "HTTPS": n.https,
	}); err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	// -e: the error log before the configuration is read, which would
	// otherwise be the system's /var/log/nginx/error.log.
	args := []string{"-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath}
	if out, err := exec.CommandContext(ctx, bin, append(args, "-t")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %w\n%s", err, out)
	}
	n.cmd = exec.Command(bin, append(args, "-g", "daemon off;")...)
	n.stderr = &rackbench.SyncBuffer{}
	n.cmd.Stdout, n.cmd.Stderr = n.stderr, n.stderr
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	n.done = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	return n, nil
}

// pids are nginx's master and its workers, whose CPU time is the proxy's.
func (n *nginx) pids() []int {
	pids := []int{n.cmd.Process.Pid}
	return append(pids, procfs.Children(n.cmd.Process.Pid)...)
}

// stop asks nginx to quit at once (SIGTERM) and waits, killing it after 10s.
func (n *nginx) stop() {
	if n == nil || n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		rackbench.Logf("nginx did not stop within 10s of SIGTERM; killing its process group")
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	}
}

// selfSigned writes cert.pem and key.pem into dir: an ECDSA P-256
// certificate for host, like the ones the router signs.
func selfSigned(dir, host string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}
