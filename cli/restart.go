package cli

import (
	"context"
	"slices"

	"github.com/spf13/cobra"
)

type restartOptions struct {
	app string
	// service is the one to restart; "" is every service.
	service string
}

func newRestartCommand(env *Env) *cobra.Command {
	var flags appFlags
	cmd := &cobra.Command{
		Use:   "restart [service]",
		Short: "Replace an app's processes (or one service's), one batch at a time",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts := restartOptions{app: app}
			if len(args) > 0 {
				opts.service = args[0]
			}
			return runRestart(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	return cmd
}

// runRestart restarts the services in name order, each once the previous
// one runs again (the rack refuses a restart while the app is updating):
//
//	Restarting web... OK
//	Restarting worker...
//	<system/ log lines>
//	OK
func runRestart(ctx context.Context, env *Env, opts restartOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	services := []string{opts.service}
	if opts.service == "" {
		ss, err := r.ServiceList(ctx, opts.app)
		if err != nil {
			return err
		}
		services = services[:0]
		for _, s := range ss {
			services = append(services, s.Name)
		}
		slices.Sort(services)
	}
	w := env.Stdout
	for _, s := range services {
		startf(w, "Restarting %s", s)
		_, err := watchApp(ctx, r, &newlineFirst{w: w}, opts.app, "Restarting "+s, func(ctx context.Context) error {
			return r.ServiceRestart(ctx, opts.app, s)
		})
		if err != nil {
			return err
		}
		ok(w)
	}
	return nil
}
