package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// Targets of the issue for the router against nginx.
const (
	minRatio    = 0.8                  // requests/s, router / nginx
	maxP99Extra = 1 * time.Millisecond // p99, router − nginx
)

// summary is a target's medians over the rounds.
type summary struct {
	rps, busy          float64
	p50, p99, cpuPerRq time.Duration
	minRPS, maxRPS     float64
}

func summarize(rs []*result) summary {
	var rps, busy, p50, p99, cpu []float64
	for _, r := range rs {
		rps = append(rps, r.rps)
		busy = append(busy, r.busy)
		p50 = append(p50, float64(r.p50))
		p99 = append(p99, float64(r.p99))
		cpu = append(cpu, float64(r.cpuPerRequest()))
	}
	med := func(xs []float64) float64 { return rackbench.Summarize(xs).Med }
	r := rackbench.Summarize(rps)
	return summary{
		rps: r.Med, busy: med(busy), minRPS: r.Min, maxRPS: r.Max,
		p50: time.Duration(med(p50)), p99: time.Duration(med(p99)), cpuPerRq: time.Duration(med(cpu)),
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func us(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// report writes the results as Markdown.
func report(w io.Writer, o options, m machine, l load, targets []*target, results []*result, elapsed time.Duration) {
	fmt.Fprintf(w, "Measured %s: %d round(s) × %s per target, targets in rotating order, after a %s warm-up of each; whole run %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), o.rounds, o.duration, o.warmup, elapsed.Round(time.Second))
	fmt.Fprintf(w, "Load: `%s` (HTTP; over HTTPS the URL names the host, with `-s resolve.lua` to connect to 127.0.0.1).\n\n",
		strings.Replace(l.command(targets[0]), targets[0].url, "http://127.0.0.1:PORT/", 1))
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s RAM, Linux %s, Docker Engine %s, nginx %s, %s, %s. wrk, nginx, the router and the backend share these CPUs.\n\n",
		m.CPUs, rackbench.OrUnknown(m.CPU), rackbench.OrUnknown(m.Mem), rackbench.OrUnknown(m.Kernel), rackbench.OrUnknown(m.Docker), rackbench.OrUnknown(m.nginx), rackbench.OrUnknown(m.wrk), m.Go)

	for _, scheme := range []string{"http", "https"} {
		by := map[*target]summary{}
		var nginxT, routerT *target
		for _, t := range targets {
			if t.scheme != scheme {
				continue
			}
			var rs []*result
			for _, r := range results {
				if r.target == t {
					rs = append(rs, r)
				}
			}
			by[t] = summarize(rs)
			switch t.kind {
			case "nginx":
				nginxT = t
			case "router":
				routerT = t
			}
		}
		if routerT == nil || nginxT == nil {
			continue
		}
		fmt.Fprintf(w, "%s (medians over rounds):\n\n", strings.ToUpper(scheme))
		fmt.Fprintf(w, "| %s | requests/s | (min–max) | p50 | p99 | proxy CPU per request | machine CPU busy |\n|---|---:|---:|---:|---:|---:|---:|\n", strings.ToUpper(scheme))
		for _, t := range targets {
			s, ok := by[t]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %s | %.0f | %.0f–%.0f | %s | %s | %s | %.0f%% |\n",
				t.name, s.rps, s.minRPS, s.maxRPS, ms(s.p50), ms(s.p99), us(s.cpuPerRq), 100*s.busy)
		}
		rt, ng := by[routerT], by[nginxT]
		ratio := rt.rps / ng.rps
		extra := rt.p99 - ng.p99
		fmt.Fprintf(w, "\n| router against nginx (%s) | measured | target | |\n|---|---:|---:|---|\n", strings.ToUpper(scheme))
		fmt.Fprintf(w, "| requests/s, router / nginx | %.2f× | ≥ %.1f× | %s |\n", ratio, minRatio, rackbench.Verdict(ratio >= minRatio))
		fmt.Fprintf(w, "| p99, router − nginx | %+.2f ms | ≤ +%.0f ms | %s |\n", float64(extra)/float64(time.Millisecond),
			float64(maxP99Extra)/float64(time.Millisecond), rackbench.Verdict(extra <= maxP99Extra))
		if d, ok := findDirect(targets, by); ok && scheme == "http" {
			fmt.Fprintf(w, "| (for scale) router / direct, nginx / direct | %.2f×, %.2f× | | |\n", rt.rps/d.rps, ng.rps/d.rps)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "Per run (busy: the machine's CPUs; other: their share used by processes other than wrk, the proxy and the backend. A run with more than %.0f%% is measured again, up to %d times, and the least disturbed attempt is kept; † marks one still over):\n\n", 100*maxOther, o.retries)
	fmt.Fprintf(w, "| round | target | scheme | requests/s | p50 | p75 | p90 | p99 | proxy CPU per request | busy | other |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		mark := ""
		if r.other > maxOther {
			mark = " †"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %.0f | %s | %s | %s | %s | %s | %.0f%% | %.0f%%%s |\n", r.round, r.target.name, r.target.scheme,
			r.rps, ms(r.p50), ms(r.p75), ms(r.p90), ms(r.p99), us(r.cpuPerRequest()), 100*r.busy, 100*r.other, mark)
	}
}

func findDirect(targets []*target, by map[*target]summary) (summary, bool) {
	for _, t := range targets {
		if t.kind == "direct" {
			s, ok := by[t]
			return s, ok
		}
	}
	return summary{}, false
}

// machine describes where the benchmark ran.
type machine struct {
	rackbench.Machine
	nginx, wrk string
}

func describeMachine(ctx context.Context) machine {
	m := machine{Machine: rackbench.DescribeMachine(ctx)}
	if bin, err := nginxBinary(); err == nil {
		// nginx -v prints "nginx version: nginx/1.22.1" on stderr.
		out, _ := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
		if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), "nginx/"); ok {
			m.nginx = v
		}
	}
	// wrk -v prints its version line and exits non-zero.
	out, _ := exec.CommandContext(ctx, "wrk", "-v").CombinedOutput()
	if first, _, _ := strings.Cut(string(out), "\n"); strings.HasPrefix(first, "wrk ") {
		m.wrk, _, _ = strings.Cut(first, " Copyright")
		m.wrk = strings.TrimSpace(m.wrk)
	}
	return m
}
