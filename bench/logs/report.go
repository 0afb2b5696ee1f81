package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// stats are a sample's median, min and max over count values (NaN
// values, unknown, left out of total).
type stats struct {
	med, min, max float64
	count, total  int
}

func summarize(xs []float64) stats {
	total := len(xs)
	xs = slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(xs) == 0 {
		return stats{total: total}
	}
	slices.Sort(xs)
	med := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		med = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return stats{med, xs[0], xs[len(xs)-1], len(xs), total}
}

// cell renders the median, and the range when there is more than one
// sample, each value with format.
func (s stats) cell(format string) string {
	if s.count == 0 {
		return "—"
	}
	c := fmt.Sprintf(format, s.med)
	if s.min != s.max {
		c = fmt.Sprintf(format+" ("+format+"–"+format+")", s.med, s.min, s.max)
	}
	if s.count < s.total {
		c += fmt.Sprintf(" [%d of %d rounds]", s.count, s.total)
	}
	return c
}

// stalledOr is "stalled" for a reader that stalled, else v.
func stalledOr(stalled bool, v string) string {
	if stalled {
		return "stalled"
	}
	return v
}

func secs(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func ms(d time.Duration) string {
	if d == unknown {
		return "—"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// rate is lines per second over d; NaN (no value) if d is not positive.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(n) / d.Seconds()
}

// per10k is CPU milliseconds per 10 000 lines of gross CPU minus the
// control round's (the fixed cost of a promote, a start, a reader).
func per10k(n int, gross, control time.Duration) float64 {
	if gross == unknown || control == unknown {
		return math.NaN()
	}
	return float64((gross - control).Milliseconds()) * 10000 / float64(n)
}

// report writes the results as Markdown.
func report(w io.Writer, m machine, n int, ctl *rackRun, plainCtl *plainRun, rounds []*rackRun, plains []*plainRun, cliPromote bool, elapsed time.Duration) {
	col := func(f func(i int) float64) stats {
		var xs []float64
		for i := range rounds {
			xs = append(xs, f(i))
		}
		return summarize(xs)
	}
	how := "the API call `POST /apps/bench/releases/R…/promote`"
	if cliPromote {
		how = "`convox env set … --promote` (its event stream is served by the daemon meanwhile)"
	}
	fmt.Fprintf(w, "Measured %s: N=%d lines, n=%d rounds, after one control round of 1 line; promote by %s; whole run %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), n, len(rounds), how, elapsed.Round(time.Second))
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s RAM, Linux %s, Docker Engine %s (%s, %s), %s, CLK_TCK %d/s, load average before %s.\n\n",
		m.CPUs, rackbench.OrUnknown(m.CPU), rackbench.OrUnknown(m.Mem), rackbench.OrUnknown(m.Kernel), rackbench.OrUnknown(m.Docker), rackbench.OrUnknown(m.driver),
		rackbench.OrUnknown(m.logOpts), m.Go, time.Second/clockTick, rackbench.OrUnknown(m.load))

	fmt.Fprintf(w, "| %d lines printed at a process's start; median (min–max) of %d | lines/s | CPU ms per 10k lines |\n|---|---:|---:|\n", n, len(rounds))
	fmt.Fprintf(w, "| **rack**: container start → all lines in the log store; CPU of `convox rack start` | %s | %s |\n",
		col(func(i int) float64 { return rate(n, rounds[i].ingest) }).cell("%.0f"),
		col(func(i int) float64 { return per10k(n, rounds[i].daemon, ctl.daemon) }).cell("%.0f"))
	fmt.Fprintf(w, "| **`docker logs -f --timestamps`**, same container, same time; CPU of the docker CLI | %s | %s |\n",
		col(func(i int) float64 { return rate(n, rounds[i].docker) }).cell("%.0f"),
		col(func(i int) float64 { return per10k(n, rounds[i].dockerCLI, ctl.dockerCLI) }).cell("%.0f"))
	fmt.Fprintf(w, "| dockerd meanwhile (writes the JSON log file, serves both streams) | | %s |\n",
		col(func(i int) float64 { return per10k(n, rounds[i].dockerd, ctl.dockerd) }).cell("%.0f"))
	fmt.Fprintf(w, "| the container's containerd shim (its stdout pipe to dockerd) | | %s |\n",
		col(func(i int) float64 { return per10k(n, rounds[i].shim, ctl.shim) }).cell("%.0f"))
	fmt.Fprintf(w, "| `docker logs -f` alone, on a plain container of the same image (`docker create` + `docker start`) | %s | %s |\n",
		col(func(i int) float64 { return rate(n, plains[i].docker) }).cell("%.0f"),
		col(func(i int) float64 { return per10k(n, plains[i].dockerCLI, plainCtl.dockerCLI) }).cell("%.0f"))
	fmt.Fprintf(w, "| dockerd meanwhile (writes the JSON log file, serves one stream) | | %s |\n\n",
		col(func(i int) float64 { return per10k(n, plains[i].dockerd, plainCtl.dockerd) }).cell("%.0f"))

	fmt.Fprintf(w, "Times run from Docker's StartedAt of the container. CPU is utime+stime from /proc, minus each process's idle rate over the same wall time, minus the control round's (a promote whose process prints one line: daemon %s, dockerd %s, docker CLI %s, shim %s; plain: dockerd %s, docker CLI %s).\n\n",
		ms(ctl.daemon), ms(ctl.dockerd), ms(ctl.dockerCLI), ms(ctl.shim), ms(plainCtl.dockerd), ms(plainCtl.dockerCLI))

	fmt.Fprintf(w, "Per round (times from the container's start; CPU gross, minus idle only; \"stalled\": no progress for %s before the last line, see below):\n\n", stallAfter)
	fmt.Fprintf(w, "| round | rack has line N | `docker logs -f` printed it | old process removed | daemon CPU | dockerd CPU | docker CLI CPU | shim CPU | host busy (idle before) | plain: `docker logs -f` | plain: dockerd | plain: docker CLI | plain: host busy |\n")
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, r := range rounds {
		p := plains[i]
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s | %s |\n", i+1,
			stalledOr(r.rackStalled, secs(r.ingest)), stalledOr(r.dockerStalled, secs(r.docker)), secs(r.promoted),
			ms(r.daemon), ms(r.dockerd), ms(r.dockerCLI), ms(r.shim), pct(r.hostBusy), pct(r.idleBusy),
			stalledOr(p.stalled, secs(p.docker)), ms(p.dockerd), ms(p.dockerCLI), pct(p.hostBusy))
	}
	fmt.Fprintf(w, "\nHost busy: the share of all %d CPUs' time that was not idle during the round (and during the idle window just before it): the measured processes plus anything else running on the machine.\n", m.CPUs)
	fmt.Fprintf(w, "\nRead back from the store (`convox logs --no-follow`, the process's stream):\n\n")
	for i, r := range rounds {
		fmt.Fprintf(w, "- round %d, process %s: the store holds %s; `docker logs -f`: %s; plain `docker logs -f`: %s. Docker's JSON log: %s files (%s for the plain container)\n",
			i+1, r.pid, r.stored, r.printed, plains[i].printed, count(r.logFiles), count(plains[i].logFiles))
	}
	for i, r := range rounds {
		if r.promoteOut != "" {
			fmt.Fprintf(w, "\n`convox env set --promote` of round %d:\n\n```\n%s```\n", i+1, indentless(r.promoteOut))
		}
	}
}

func indentless(s string) string {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.0f %%", 100*x)
}

func count(n int) string {
	if n <= 0 {
		return "?"
	}
	return fmt.Sprint(n)
}
