package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

type deployOptions struct {
	build   buildOptions
	promote promoteOptions
}

func newDeployCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts deployOptions
	cmd := &cobra.Command{
		Use:   "deploy [dir]",
		Short: "Build an app's source and promote the release",
		Long: `Deploy is "convox build" followed by "convox releases promote" of the new
release: it waits until the rack runs the release, showing the rack's events,
and fails if the rack rolls back.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.build.resolve(env, cmd, &flags, args); err != nil {
				return err
			}
			return runDeploy(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	addBuildFlags(cmd, &opts.build)
	addPromoteFlags(cmd, &opts.promote)
	return cmd
}

func runDeploy(ctx context.Context, env *Env, opts deployOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	w := progress(env, opts.build.id)
	b, err := build(ctx, r, w, opts.build)
	if err != nil {
		return err
	}
	if b.Release == "" {
		return fmt.Errorf("build %s made no release", b.Id)
	}
	if err := promote(ctx, r, w, opts.build.app, b.Release, opts.promote); err != nil {
		return err
	}
	printID(env, opts.build.id, b.Release)
	return nil
}
