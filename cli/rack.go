package cli

import (
	"context"

	"github.com/spf13/cobra"
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
