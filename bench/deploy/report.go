package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// A phase of `convox deploy` ends at the first output line, after the
// previous phase's end, that matches its pattern (for the rack's events,
// the last of the run of matching lines: both processes started, both
// healthy); the time is when the line reached the benchmark.
type phase struct {
	name string
	end  *regexp.Regexp
	// last: the phase ends at the last of consecutive matches (after its
	// first match, lines that match other patterns of the same kind, like
	// more "Started process" lines, extend it).
	last bool
}

var phases = []phase{
	{"CLI start-up, package source (tar.gz)", regexp.MustCompile(`^Packaging source\.\.\. OK$`), false},
	{"upload source", regexp.MustCompile(`^Uploading source\.\.\. OK$`), false},
	{"create build", regexp.MustCompile(`^Starting build\.\.\. OK$`), false},
	{"cached docker build, build log and status", regexp.MustCompile(`^Build: +B[A-Z]{10}$`), false},
	{"release, app check", regexp.MustCompile(`^Promoting R[A-Z]{10}\.\.\. ?$`), false},
	{"promote request, start 2 new processes", regexp.MustCompile(` system/process Started process `), true},
	{"health gate (both new processes healthy)", regexp.MustCompile(` system/process Process \S+ is healthy$`), true},
	{"stop old processes (SIGTERM, drain)", regexp.MustCompile(` system/process Stopped process `), true},
	{"remove old processes, record the release", regexp.MustCompile(` system/promote Promoted release `), false},
}

// lastPhase is the time from the rack's "Promoted release" event to the
// command's exit.
const lastPhase = "CLI notices the app is running, prints OK, exits"

// phaseTimes splits a deploy's time into the phases, in order, the last
// one ending at the command's exit. A phase whose line never came is
// missing from the map, and its time counts in the next phase found.
func phaseTimes(d *deployRun) map[string]time.Duration {
	out := map[string]time.Duration{}
	var prev time.Duration
	i := 0
	for _, ph := range phases {
		j := i
		for j < len(d.lines) && !ph.end.MatchString(d.lines[j].text) {
			j++
		}
		if j == len(d.lines) {
			continue
		}
		if ph.last {
			// Extend over the following matching lines, skipping
			// other event lines interleaved with them.
			for k := j + 1; k < len(d.lines) && strings.Contains(d.lines[k].text, " system/"); k++ {
				if ph.end.MatchString(d.lines[k].text) {
					j = k
				}
			}
		}
		out[ph.name] = d.lines[j].at - prev
		prev, i = d.lines[j].at, j+1
	}
	out[lastPhase] = d.total - prev
	return out
}

// stats are a sample's median, min and max.
type stats struct{ med, min, max time.Duration }

func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{-1, -1, -1}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{med, s[0], s[len(s)-1]}
}

func secs(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func (s stats) row(name string) string {
	return fmt.Sprintf("| %s | %s | %s | %s |\n", name, secs(s.med), secs(s.min), secs(s.max))
}

// report writes the results as Markdown.
func report(w io.Writer, n int, m machine, ours []*deployRun, base []*plainRun, elapsed time.Duration) {
	pick := func(f func(i int) time.Duration) stats {
		var ds []time.Duration
		for i := range n {
			if d := f(i); d >= 0 {
				ds = append(ds, d)
			}
		}
		return summarize(ds)
	}
	total := pick(func(i int) time.Duration { return ours[i].total })
	serving := pick(func(i int) time.Duration { return ours[i].serving })
	oldGone := pick(func(i int) time.Duration { return ours[i].oldGone })
	plainTotal := pick(func(i int) time.Duration { return base[i].total })
	ratio := pick(func(i int) time.Duration {
		return time.Duration(float64(time.Second) * ours[i].total.Seconds() / base[i].total.Seconds())
	})

	fmt.Fprintf(w, "Measured %s: n=%d of each, interleaved (ours, then baseline), after one untimed warm-up of each; whole run %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), n, elapsed.Round(time.Second))
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s RAM, Linux %s, Docker Engine %s (%s, classic builder), %s.\n\n",
		m.CPUs, rackbench.OrUnknown(m.CPU), rackbench.OrUnknown(m.Mem), rackbench.OrUnknown(m.Kernel), rackbench.OrUnknown(m.Docker), rackbench.OrUnknown(m.driver), m.Go)

	fmt.Fprintf(w, "| wall time | median | min | max |\n|---|---:|---:|---:|\n")
	io.WriteString(w, total.row("`convox deploy` of the cached sample (start → exit after `OK`)"))
	io.WriteString(w, serving.row("… until both new processes answer `GET /` with the new release (polled)"))
	io.WriteString(w, oldGone.row("… until the old release's containers are gone (polled)"))
	io.WriteString(w, plainTotal.row("baseline: `docker build` (cached) + 2× `docker run -d` + wait for `GET /` 200 on both + `docker rm -f` of the old pair"))
	fmt.Fprintf(w, "| **ratio ours / baseline** | **%.1f×** (of medians) | %.1f× | %.1f× |\n\n",
		total.med.Seconds()/plainTotal.med.Seconds(), ratio.min.Seconds(), ratio.max.Seconds())
	fmt.Fprintf(w, "The ratio's min/max are over the interleaved pairs (run i of ours / run i of the baseline).\n\n")

	fmt.Fprintf(w, "Where `convox deploy`'s time goes (each phase ends when the CLI prints the line that closes it):\n\n")
	fmt.Fprintf(w, "| phase of `convox deploy` | median | min | max |\n|---|---:|---:|---:|\n")
	times := make([]map[string]time.Duration, n)
	for i := range n {
		times[i] = phaseTimes(ours[i])
	}
	for _, name := range append(phaseNames(), lastPhase) {
		io.WriteString(w, pick(func(i int) time.Duration {
			if d, ok := times[i][name]; ok {
				return d
			}
			return -1
		}).row(name))
	}
	io.WriteString(w, "\n")

	fmt.Fprintf(w, "| phase of the baseline | median | min | max |\n|---|---:|---:|---:|\n")
	io.WriteString(w, pick(func(i int) time.Duration { return base[i].build }).row("`docker build` (cached)"))
	io.WriteString(w, pick(func(i int) time.Duration { return base[i].run }).row("2× `docker run -d`"))
	io.WriteString(w, pick(func(i int) time.Duration { return base[i].wait }).row("2× `docker port`, poll `GET /` until both answer"))
	io.WriteString(w, pick(func(i int) time.Duration { return base[i].remove }).row("`docker rm -f` of the old pair"))
	io.WriteString(w, "\n")

	fmt.Fprintf(w, "Per run:\n\n| run | `convox deploy` | serving | old gone | baseline |\n|---:|---:|---:|---:|---:|\n")
	for i := range n {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i+1, secs(ours[i].total),
			secs(ours[i].serving), secs(ours[i].oldGone), secs(base[i].total))
	}
}

func phaseNames() []string {
	var names []string
	for _, p := range phases {
		names = append(names, p.name)
	}
	return names
}
