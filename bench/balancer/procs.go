package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/singlehost/convox/balancer"
	"github.com/singlehost/convox/bench/internal/rackbench"
)

// proc is a process the benchmark started and stops: a child of its own
// binary (backend, balancer) or haproxy.
type proc struct {
	name   string
	addr   string // where it listens
	cmd    *exec.Cmd
	stdin  io.Closer // a child of ours exits when it is closed
	stderr *rackbench.SyncBuffer
	done   chan struct{}
}

func (p *proc) pids() []int { return []int{p.cmd.Process.Pid} }

// stop closes the child's stdin and sends SIGTERM, and waits for it to
// exit, killing it after 10 s.
func (p *proc) stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		rackbench.Logf("%s did not stop within 10s of SIGTERM; killing it", p.name)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// launch starts cmd in a process group of its own (Ctrl-C reaches the
// benchmark, which stops its children itself).
func launch(name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, stderr: &rackbench.SyncBuffer{}}
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// startChild runs this program's binary with a hidden subcommand and waits
// for the "listening ADDR" line it prints when it is ready.
func startChild(ctx context.Context, self, name string, args ...string) (*proc, error) {
	cmd := exec.Command(self, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := launch(name, cmd)
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		if addr, found := strings.CutPrefix(l, "listening "); ok && found {
			p.addr = addr
			return p, nil
		}
		p.stop()
		return nil, fmt.Errorf("%s: said %q\n%s", name, l, p.stderr)
	case <-time.After(10 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start within 10s\n%s", name, p.stderr)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// child runs a hidden subcommand: the benchmark's backend or its balancer.
// Either exits when its stdin closes (the benchmark is done or gone) or on
// SIGTERM.
func child(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch {
	case args[0] == "_backend" && len(args) == 1:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		fmt.Printf("listening %s\n", ln.Addr())
		go echo(ln)
	case args[0] == "_balancer" && len(args) == 3:
		target, err := netip.ParseAddrPort(args[1])
		if err != nil {
			return fail(err)
		}
		loops, err := strconv.Atoi(args[2])
		if err != nil {
			return fail(err)
		}
		b := balancer.New(balancer.Options{
			BindAddr: "127.0.0.1",
			Loops:    loops,
			Log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		defer b.Close()
		// A port free a moment ago; another program may take it first,
		// so try a few.
		var port int
		for try := 0; ; try++ {
			port, err = freePort()
			if err == nil {
				err = b.Set(context.Background(), "bench", []balancer.Listener{{
					Name: "bench", Service: "backend", Port: port, Targets: []netip.AddrPort{target},
				}})
			}
			if err == nil {
				break
			}
			if try == 5 {
				return fail(err)
			}
		}
		fmt.Printf("listening 127.0.0.1:%d\n", port)
	default:
		return fail(fmt.Errorf("unknown subcommand %q", args))
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-stop:
	case <-eof:
	}
	return 0
}

// echo is the sample app's TCP echo (testdata/apps/server): it copies what
// each connection sends back to it and, once the client has finished
// sending, writes a bye and closes.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
			fmt.Fprintf(c, "bye from backend\n")
		}()
	}
}

// haproxyConf is the baseline: haproxy as a plain TCP forwarder, tuned as
// one would for this job: splice(2) both ways when it pays, one thread per
// CPU, maxconn far above the load (and within a 20000 open-file limit), no logging.
var haproxyConf = template.Must(template.New("haproxy.cfg").Parse(`# Written by bench/balancer for one run.
global
    maxconn 4000
    nbthread {{.Threads}}
    pidfile {{.Dir}}/haproxy.pid

defaults
    mode tcp
{{- range .Splice}}
    option {{.}}
{{- end}}
    maxconn 4000
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind {{.Listen}}
    default_backend echo

backend echo
    server backend {{.Backend}}
`))

// spliceOptions are haproxy's options for each -haproxy-splice.
var spliceOptions = map[string][]string{
	"auto":   {"splice-auto"},
	"always": {"splice-request", "splice-response"},
	"off":    nil,
}

// haproxyBinary finds haproxy on PATH or where Debian puts it.
func haproxyBinary() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", errors.New("haproxy is not installed: run bench/balancer/run.sh, which installs it (Debian: apt-get install haproxy)")
}

var haproxyVersion = sync.OnceValue(func() string {
	bin, err := haproxyBinary()
	if err != nil {
		return ""
	}
	// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
	out, _ := exec.Command(bin, "-v").Output()
	f := strings.Fields(string(out))
	if len(f) > 2 && f[1] == "version" {
		return f[2]
	}
	return ""
})

// startHaproxy writes a configuration into dir and starts haproxy in the
// foreground on a free loopback port, forwarding to backend.
func startHaproxy(ctx context.Context, dir, backend, splice string) (*proc, error) {
	bin, err := haproxyBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var conf bytes.Buffer
	if err := haproxyConf.Execute(&conf, map[string]any{
		"Dir": dir, "Listen": listen, "Backend": backend, "Threads": runtime.NumCPU(), "Splice": spliceOptions[splice],
	}); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, conf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "-c", "-q", "-f", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy -c: %w\n%s", err, out)
	}
	p, err := launch("haproxy", exec.Command(bin, "-db", "-f", path))
	if err != nil {
		return nil, err
	}
	p.addr = listen
	return p, nil
}

// freePort returns a loopback port that was free a moment ago, below the
// kernel's ephemeral range: a port in that range may be the local port of
// a connection in TIME_WAIT, of which a benchmark leaves tens of thousands,
// and then a listener cannot bind it.
func freePort() (int, error) {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	from := max(1024, low-12000)
	for range 100 {
		port := from + mathrand.IntN(low-from)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in %d-%d", from, low-1)
}

// freeAddr is 127.0.0.1 and a free port, see freePort.
func freeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// timeWaits counts the host's TCP connections in TIME_WAIT to a remote
// port.
func timeWaits(port int) int {
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "06" { // TCP_TIME_WAIT
				continue
			}
			_, hexPort, _ := strings.Cut(fields[2], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}
