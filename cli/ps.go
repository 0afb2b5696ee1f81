package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

type psOptions struct {
	app     string
	release string
	service string
}

func newPsCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts psOptions
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List an app's processes, or manage one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			return runPs(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	cmd.Flags().StringVar(&opts.release, "release", "", "only the processes of this release")
	cmd.Flags().StringVarP(&opts.service, "service", "s", "", "only the processes of this service")
	cmd.AddCommand(
		newPsInfoCommand(env, &flags),
		newPsStopCommand(env, &flags),
	)
	return cmd
}

func runPs(ctx context.Context, env *Env, opts psOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	ps, err := r.ProcessList(ctx, opts.app, api.ProcessListOptions{Release: opts.release, Service: opts.service})
	if err != nil {
		return err
	}
	now := env.now()
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, []string{p.Id, p.Name, p.Status, p.Release, ago(now, p.Started), p.Command})
	}
	return writeTable(env.Stdout, []string{"ID", "SERVICE", "STATUS", "RELEASE", "STARTED", "COMMAND"}, rows)
}

// processRef names one process of an app.
type processRef struct {
	app, pid string
}

func newProcessRefCommand(env *Env, flags *appFlags, use, short string, run func(ctx context.Context, env *Env, ref processRef) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			return run(cmd.Context(), env, processRef{app: app, pid: args[0]})
		},
	}
}

func newPsInfoCommand(env *Env, flags *appFlags) *cobra.Command {
	return newProcessRefCommand(env, flags, "info <pid>", "Show a process", runPsInfo)
}

func runPsInfo(ctx context.Context, env *Env, ref processRef) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	p, err := r.ProcessGet(ctx, ref.app, ref.pid)
	if err != nil {
		return err
	}
	return writeInfo(env.Stdout, []field{
		{"Id", p.Id},
		{"App", p.App},
		{"Command", p.Command},
		{"Instance", p.Instance},
		{"Release", p.Release},
		{"Service", p.Name},
		{"Started", ago(env.now(), p.Started)},
		{"Status", p.Status},
	})
}

func newPsStopCommand(env *Env, flags *appFlags) *cobra.Command {
	return newProcessRefCommand(env, flags, "stop <pid>", "Stop a process (a service's is replaced)", runPsStop)
}

func runPsStop(ctx context.Context, env *Env, ref processRef) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	startf(env.Stdout, "Stopping %s", ref.pid)
	if err := r.ProcessStop(ctx, ref.app, ref.pid); err != nil {
		return err
	}
	ok(env.Stdout)
	return nil
}
