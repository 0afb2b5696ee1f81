package cli

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func newBalancersCommand(env *Env) *cobra.Command {
	var flags appFlags
	cmd := &cobra.Command{
		Use:   "balancers",
		Short: "List an app's TCP balancers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			return runBalancers(cmd.Context(), env, app)
		},
	}
	addAppFlags(cmd, &flags)
	return cmd
}

func runBalancers(ctx context.Context, env *Env, app string) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	bs, err := r.BalancerList(ctx, app)
	if err != nil {
		return err
	}
	var rows [][]string
	for _, b := range bs {
		// One endpoint per port: host:listen, what a client connects to.
		var eps []string
		for _, p := range b.Ports {
			eps = append(eps, b.Endpoint+":"+strconv.Itoa(p.Source))
		}
		rows = append(rows, []string{b.Name, b.Service, strings.Join(eps, " ")})
	}
	return writeTable(env.Stdout, []string{"BALANCER", "SERVICE", "ENDPOINT"}, rows)
}
