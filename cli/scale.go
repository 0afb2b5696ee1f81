package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

type scaleOptions struct {
	app string
	// service is required to change, optional to list.
	service string
	// update holds the sizing flags given; none means list.
	update api.ServiceUpdateOptions
}

func newScaleCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts scaleOptions
	var count, cpu, memory int
	cmd := &cobra.Command{
		Use:   "scale [service]",
		Short: "Show the scale of an app's services, or change a service's",
		Example: `  convox scale
  convox scale web --count 3
  convox scale web --cpu 500 --memory 1024`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			if len(args) > 0 {
				opts.service = args[0]
			}
			if cmd.Flags().Changed("count") {
				opts.update.Count = &count
			}
			if cmd.Flags().Changed("cpu") {
				opts.update.Cpu = &cpu
			}
			if cmd.Flags().Changed("memory") {
				opts.update.Memory = &memory
			}
			if opts.update == (api.ServiceUpdateOptions{}) {
				return runScale(cmd.Context(), env, opts)
			}
			return runScaleUpdate(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	cmd.Flags().IntVar(&count, "count", 0, "number of processes")
	cmd.Flags().IntVar(&cpu, "cpu", 0, "CPU per process, in millicores")
	cmd.Flags().IntVar(&memory, "memory", 0, "memory per process, in MB")
	return cmd
}

// runScale lists each service's desired and running process counts and
// sizes; RUNNING counts the service's processes whose status is running.
func runScale(ctx context.Context, env *Env, opts scaleOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	ss, err := r.ServiceList(ctx, opts.app)
	if err != nil {
		return err
	}
	slices.SortFunc(ss, func(a, b api.Service) int { return strings.Compare(a.Name, b.Name) })
	if opts.service != "" {
		ss = slices.DeleteFunc(ss, func(s api.Service) bool { return s.Name != opts.service })
		if len(ss) == 0 {
			return fmt.Errorf("service not found: %s", opts.service)
		}
	}
	ps, err := r.ProcessList(ctx, opts.app, api.ProcessListOptions{})
	if err != nil {
		return err
	}
	running := map[string]int{}
	for _, p := range ps {
		if p.Status == "running" {
			running[p.Name]++
		}
	}
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, []string{s.Name, strconv.Itoa(s.Count), strconv.Itoa(running[s.Name]), strconv.Itoa(s.Cpu), strconv.Itoa(s.Memory)})
	}
	return writeTable(env.Stdout, []string{"SERVICE", "DESIRED", "RUNNING", "CPU", "MEMORY"}, rows)
}

// runScaleUpdate changes a service's scale and waits for the app to run
// again, showing the rack's events:
//
//	Scaling web...
//	<system/ log lines>
//	OK
func runScaleUpdate(ctx context.Context, env *Env, opts scaleOptions) error {
	if opts.service == "" {
		return errors.New("service name required: convox scale <service> --count N")
	}
	r, err := env.rack()
	if err != nil {
		return err
	}
	w := env.Stdout
	startf(w, "Scaling %s", opts.service)
	_, err = watchApp(ctx, r, w, opts.app, "Scaling "+opts.service, func(ctx context.Context) error {
		if err := r.ServiceUpdate(ctx, opts.app, opts.service, opts.update); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w)
		return err
	})
	if err != nil {
		return err
	}
	ok(w)
	return nil
}
