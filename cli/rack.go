package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

// newRackCommand builds `convox rack`, which shows the rack, with the
// daemon's `start` (made by package rack and handed in through Execute)
// grafted under it. start may be nil.
func newRackCommand(env *Env, start *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rack",
		Short: "Show the rack, or start it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRack(cmd.Context(), env)
		},
	}
	if start != nil {
		cmd.AddCommand(start)
	}
	cmd.AddCommand(newRackCACommand(env), newRackLogsCommand(env))
	return cmd
}

// newRackCACommand prints the CA that signs the router's certificates, so a
// browser or curl can be told to trust it.
func newRackCACommand(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "ca",
		Short: "Print the certificate of the CA that signs the router's certificates",
		Long: `Print the PEM certificate of the rack's own CA. Trust it to reach services over
HTTPS without warnings, e.g.:

  convox rack ca > rack-ca.pem
  curl --cacert rack-ca.pem https://web.myapp.localhost`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := env.rack()
			if err != nil {
				return err
			}
			pem, err := r.SystemCA(cmd.Context())
			if err != nil {
				return err
			}
			_, err = env.Stdout.Write(pem)
			return err
		},
	}
}

// newRackLogsCommand streams the rack daemon's own log.
func newRackLogsCommand(env *Env) *cobra.Command {
	var opts logsOptions
	var tail int
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show the rack's own log and follow it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := env.rack()
			if err != nil {
				return err
			}
			follow, prefix := !opts.noFollow, true
			lo := api.LogsOptions{Filter: opts.filter, Follow: &follow, Prefix: &prefix, Since: &opts.since}
			if cmd.Flags().Changed("tail") {
				lo.Tail = &tail
			}
			logs, err := r.SystemLogs(cmd.Context(), lo)
			if err != nil {
				return err
			}
			defer logs.Close()
			return copyStream(cmd.Context(), env.Stdout, logs)
		},
	}
	cmd.Flags().StringVar(&opts.filter, "filter", "", "only lines containing this text")
	cmd.Flags().DurationVar(&opts.since, "since", 2*time.Minute, "how far back the history starts")
	cmd.Flags().BoolVar(&opts.noFollow, "no-follow", false, "stop at the end of the history")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines of the history")
	return cmd
}

func runRack(ctx context.Context, env *Env) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	s, err := r.SystemGet(ctx)
	if err != nil {
		return err
	}
	fields := []field{{"Name", s.Name}, {"Provider", s.Provider}}
	if s.Region != "" {
		fields = append(fields, field{"Region", s.Region})
	}
	if s.Domain != "" {
		fields = append(fields, field{"Router", s.Domain})
	}
	fields = append(fields, field{"Status", s.Status}, field{"Version", s.Version})
	return writeInfo(env.Stdout, fields)
}
