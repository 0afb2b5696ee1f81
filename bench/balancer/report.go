package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

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

func mibs(v float64) string { return fmt.Sprintf("%.0f MiB/s", v/(1<<20)) }

// report writes the results as Markdown.
func report(w io.Writer, o options, m rackbench.Machine, suites []*suite, elapsed time.Duration) {
	fmt.Fprintf(w, "Measured %s: %d round(s), targets in rotating order, after an untimed warm-up of each; whole run %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), o.rounds, elapsed.Round(time.Second))
	fmt.Fprintf(w, "Load (this program, in a process of its own): **throughput**: %d connections at once, each sending %d MiB and reading them back from the echo; the figure is payload per second, one way. **Connections/s**: %d workers for %s, each in a loop: connect, write 1 byte, read it back, close.\n\n",
		o.streams, o.mib, o.workers, o.duration)
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s RAM, Linux %s, Docker Engine %s, haproxy %s, %s. The load, the proxy and the backend share these CPUs.\n\n",
		m.CPUs, rackbench.OrUnknown(m.CPU), rackbench.OrUnknown(m.Mem), rackbench.OrUnknown(m.Kernel), rackbench.OrUnknown(m.Docker), rackbench.OrUnknown(haproxyVersion()), m.Go)

	for _, s := range suites {
		fmt.Fprintf(w, "#### %s\n\nBackend: %s.\n\n", s.title, s.backend)
		direct, haproxy, bal := s.targets[0], s.targets[1], s.targets[2]
		rate := func(r *result) float64 { return r.rate }
		med := func(t *target, kind string) float64 { return rackbench.Summarize(of(s, t, kind, rate)).Med }

		fmt.Fprintf(w, "| throughput | median | min | max | × direct | proxy CPU / GiB | all CPU / GiB | machine busy | failed |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range s.targets {
			st := rackbench.Summarize(of(s, t, "throughput", rate))
			proxyCPU := "—"
			if t.pids != nil {
				proxyCPU = fmt.Sprintf("%.2f s", rackbench.Summarize(of(s, t, "throughput", func(r *result) float64 { return r.per(r.cpu.proxy) })).Med)
			}
			all := rackbench.Summarize(of(s, t, "throughput", func(r *result) float64 { return r.per(r.cpu.ours()) })).Med
			busy := rackbench.Summarize(of(s, t, "throughput", func(r *result) float64 { return r.cpu.busy / r.cpu.total })).Med
			var failed float64
			for _, f := range of(s, t, "throughput", func(r *result) float64 { return float64(r.errors) }) {
				failed += f
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %s | %.2f s | %.0f%% | %.0f |\n",
				t.name, mibs(st.Med), mibs(st.Min), mibs(st.Max), st.Med/med(direct, "throughput"), proxyCPU, all, 100*busy, failed)
		}
		fmt.Fprintln(w)

		fmt.Fprintf(w, "| connections/s | median | min | max | × direct | × haproxy | p50 | p99 | proxy CPU / conn | all CPU / conn | failed |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range s.targets {
			st := rackbench.Summarize(of(s, t, "conns", rate))
			vsHaproxy := "—"
			if t != direct {
				vsHaproxy = fmt.Sprintf("%.2f×", st.Med/med(haproxy, "conns"))
			}
			proxyCPU := "—"
			if t.pids != nil {
				proxyCPU = us(rackbench.Summarize(of(s, t, "conns", func(r *result) float64 { return r.per(r.cpu.proxy) })).Med)
			}
			all := rackbench.Summarize(of(s, t, "conns", func(r *result) float64 { return r.per(r.cpu.ours()) })).Med
			p50 := rackbench.Summarize(of(s, t, "conns", func(r *result) float64 { return float64(r.p50) })).Med
			p99 := rackbench.Summarize(of(s, t, "conns", func(r *result) float64 { return float64(r.p99) })).Med
			var failed float64
			for _, f := range of(s, t, "conns", func(r *result) float64 { return float64(r.errors) }) {
				failed += f
			}
			fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.2f× | %s | %s | %s | %s | %s | %.0f |\n",
				t.name, st.Med, st.Min, st.Max, st.Med/med(direct, "conns"), vsHaproxy,
				ms(time.Duration(p50)), ms(time.Duration(p99)), proxyCPU, us(all), failed)
		}
		fmt.Fprintln(w)

		tr := med(bal, "throughput") / med(direct, "throughput")
		cr := med(bal, "conns") / med(haproxy, "conns")
		hr := med(haproxy, "throughput") / med(direct, "throughput")
		fmt.Fprintf(w, "Targets (%s):\n\n", s.name)
		fmt.Fprintf(w, "- throughput, balancer ≥ %.1f× direct: %.2f× %s (haproxy: %.2f×)\n", minThroughputRatio, tr, rackbench.Verdict(tr >= minThroughputRatio), hr)
		fmt.Fprintf(w, "- connections/s, balancer ≥ haproxy: %.2f× %s\n\n", cr, rackbench.Verdict(cr >= minConnRatio))
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
