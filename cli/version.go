package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

func newVersionCommand(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the client's and the rack's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(cmd.Context(), env)
		},
	}
}

// runVersion prints the client's version, then the rack's, or "none" when no
// rack answers: that is an answer here, not an error.
func runVersion(ctx context.Context, env *Env) error {
	fmt.Fprintf(env.Stdout, "client: %s\n", api.Version)
	r, err := env.rack()
	if err != nil {
		return err
	}
	s, err := r.SystemGet(ctx)
	var ce *api.ConnError
	if errors.As(err, &ce) {
		fmt.Fprintln(env.Stdout, "server: none")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "server: %s\n", s.Version)
	return nil
}
