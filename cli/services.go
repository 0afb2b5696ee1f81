package cli

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

type servicesOptions struct {
	app string
}

func newServicesCommand(env *Env) *cobra.Command {
	var flags appFlags
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List an app's services, or restart one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			return runServices(cmd.Context(), env, servicesOptions{app: app})
		},
	}
	addAppFlags(cmd, &flags)
	cmd.AddCommand(newServicesRestartCommand(env, &flags))
	return cmd
}

// runServices lists the services of the active release. PORTS is
// "balancer:container" for a routed port (the router's 443), else the
// container port alone.
func runServices(ctx context.Context, env *Env, opts servicesOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	ss, err := r.ServiceList(ctx, opts.app)
	if err != nil {
		return err
	}
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		ports := make([]string, 0, len(s.Ports))
		for _, p := range s.Ports {
			port := strconv.Itoa(p.Container)
			if p.Balancer != 0 {
				port = strconv.Itoa(p.Balancer) + ":" + port
			}
			ports = append(ports, port)
		}
		rows = append(rows, []string{s.Name, s.Domain, strings.Join(ports, " ")})
	}
	return writeTable(env.Stdout, []string{"SERVICE", "DOMAIN", "PORTS"}, rows)
}

type servicesRestartOptions struct {
	app, service string
}

func newServicesRestartCommand(env *Env, flags *appFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "restart <service>",
		Short: "Replace a service's processes, one batch at a time",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			return runServicesRestart(cmd.Context(), env, servicesRestartOptions{app: app, service: args[0]})
		},
	}
}

// runServicesRestart asks for the restart and, as Convox does, does not
// wait for it; `convox restart <service>` waits.
func runServicesRestart(ctx context.Context, env *Env, opts servicesRestartOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	startf(env.Stdout, "Restarting %s", opts.service)
	if err := r.ServiceRestart(ctx, opts.app, opts.service); err != nil {
		return err
	}
	ok(env.Stdout)
	return nil
}
