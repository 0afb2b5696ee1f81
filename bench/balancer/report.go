package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// stats is the median, min and max of a sample.
type stats struct{ med, min, max float64 }

func summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{med: med, min: s[0], max: s[len(s)-1]}
}

// of collects f over the results of kind against t.
func of(s *suite, t *target, kind string, f func(*result) float64) []float64 {
	var xs []float64
	for _, r := range s.results {
		if r.target == t && r.kind == kind {
			xs = append(xs, f(r))
		}
	}
	return xs
}

func verdict(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**FAIL**"
}

func mibs(v float64) string { return fmt.Sprintf("%.0f MiB/s", v/(1<<20)) }

// report writes the results as Markdown.
func report(w io.Writer, o options, m machine, suites []*suite, elapsed time.Duration) {
	fmt.Fprintf(w, "Measured %s: %d round(s), targets in rotating order, after an untimed warm-up of each; whole run %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), o.rounds, elapsed.Round(time.Second))
	fmt.Fprintf(w, "Load (this program, in a process of its own): **throughput**: %d connections at once, each sending %d MiB and reading them back from the echo; the figure is payload per second, one way. **Connections/s**: %d workers for %s, each in a loop: connect, write 1 byte, read it back, close.\n\n",
		o.streams, o.mib, o.workers, o.duration)
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s RAM, Linux %s, Docker Engine %s, haproxy %s, %s. The load, the proxy and the backend share these CPUs.\n\n",
		m.cpus, orUnknown(m.cpu), orUnknown(m.mem), orUnknown(m.kernel), orUnknown(m.docker), orUnknown(haproxyVersion()), m.goVersion)

	for _, s := range suites {
		fmt.Fprintf(w, "#### %s\n\nBackend: %s.\n\n", s.title, s.backend)
		direct, haproxy, bal := s.targets[0], s.targets[1], s.targets[2]
		rate := func(r *result) float64 { return r.rate }
		med := func(t *target, kind string) float64 { return summarize(of(s, t, kind, rate)).med }

		fmt.Fprintf(w, "| throughput | median | min | max | × direct | proxy CPU / GiB | all CPU / GiB | machine busy | failed |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range s.targets {
			st := summarize(of(s, t, "throughput", rate))
			proxyCPU := "—"
			if t.pids != nil {
				proxyCPU = fmt.Sprintf("%.2f s", summarize(of(s, t, "throughput", func(r *result) float64 { return r.per(r.cpu.proxy) })).med)
			}
			all := summarize(of(s, t, "throughput", func(r *result) float64 { return r.per(r.cpu.ours()) })).med
			busy := summarize(of(s, t, "throughput", func(r *result) float64 { return r.cpu.busy / r.cpu.total })).med
			var failed float64
			for _, f := range of(s, t, "throughput", func(r *result) float64 { return float64(r.errors) }) {
				failed += f
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %s | %.2f s | %.0f%% | %.0f |\n",
				t.name, mibs(st.med), mibs(st.min), mibs(st.max), st.med/med(direct, "throughput"), proxyCPU, all, 100*busy, failed)
		}
		fmt.Fprintln(w)

		fmt.Fprintf(w, "| connections/s | median | min | max | × direct | × haproxy | p50 | p99 | proxy CPU / conn | all CPU / conn | failed |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range s.targets {
			st := summarize(of(s, t, "conns", rate))
			vsHaproxy := "—"
			if t != direct {
				vsHaproxy = fmt.Sprintf("%.2f×", st.med/med(haproxy, "conns"))
			}
			proxyCPU := "—"
			if t.pids != nil {
				proxyCPU = us(summarize(of(s, t, "conns", func(r *result) float64 { return r.per(r.cpu.proxy) })).med)
			}
			all := summarize(of(s, t, "conns", func(r *result) float64 { return r.per(r.cpu.ours()) })).med
			p50 := summarize(of(s, t, "conns", func(r *result) float64 { return float64(r.p50) })).med
			p99 := summarize(of(s, t, "conns", func(r *result) float64 { return float64(r.p99) })).med
			var failed float64
			for _, f := range of(s, t, "conns", func(r *result) float64 { return float64(r.errors) }) {
				failed += f
			}
			fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.2f× | %s | %s | %s | %s | %s | %.0f |\n",
				t.name, st.med, st.min, st.max, st.med/med(direct, "conns"), vsHaproxy,
				ms(time.Duration(p50)), ms(time.Duration(p99)), proxyCPU, us(all), failed)
		}
		fmt.Fprintln(w)

		tr := med(bal, "throughput") / med(direct, "throughput")
		cr := med(bal, "conns") / med(haproxy, "conns")
		hr := med(haproxy, "throughput") / med(direct, "throughput")
		fmt.Fprintf(w, "Targets (%s):\n\n", s.name)
		fmt.Fprintf(w, "- throughput, balancer ≥ %.1f× direct: %.2f× %s (haproxy: %.2f×)\n", minThroughputRatio, tr, verdict(tr >= minThroughputRatio), hr)
		fmt.Fprintf(w, "- connections/s, balancer ≥ haproxy: %.2f× %s\n\n", cr, verdict(cr >= minConnRatio))
		if len(s.failures) > 0 {
			fmt.Fprintf(w, "Throughput runs with a failed transfer (each measured again, up to %d times; the table keeps the last attempt):\n\n", o.retries)
			for _, r := range s.failures {
				fmt.Fprintf(w, "- round %d, %s, attempt %d: %d of %d transfers failed: %s\n", r.round, r.target.name, r.attempts, r.errors, o.streams, r.firstErr)
			}
			fmt.Fprintln(w)
		}
		if s.note != "" {
			fmt.Fprintf(w, "%s\n\n", s.note)
		}
	}
	if o.verbose {
		fmt.Fprintf(w, "Every run:\n\n| suite | round | target | measurement | figures |\n|---|---:|---|---|---|\n")
		for _, s := range suites {
			for _, r := range s.results {
				fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", s.name, r.round, r.target.name, r.kind, strings.Join(strings.Fields(r.line()), " "))
			}
		}
		fmt.Fprintln(w)
	}
}

// machine describes where the benchmark ran.
type machine struct {
	cpus                     int
	cpu, mem, kernel, docker string
	goVersion                string
}

func describeMachine(ctx context.Context) machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "free", "-h").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Mem:" {
				m.mem = f[1]
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(data))
	}
	if out, err := dockerOut(ctx, "version", "--format", "{{.Server.Version}}"); err == nil {
		m.docker = strings.TrimSpace(out)
	}
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
