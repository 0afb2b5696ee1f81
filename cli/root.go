// Package cli is the convox command line: a thin client of the rack API that
// prints what the Convox CLI prints. Every command is listed in
// newRootCommand; each takes its surroundings from an Env and writes to the
// Env's streams, so tests run it in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

// Execute runs the CLI with os streams and returns the exit code. start is `convox rack start`, grafted under `rack` so that cli never imports the daemon.
func Execute(ctx context.Context, args []string, start *cobra.Command) int {
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ERROR: finding the working directory: %v\n", err)
		return 1
	}
	return Run(ctx, args, Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
		Dir:    dir,
	}, start)
}

// Run runs the CLI with args (without the program name) in env and returns
// the exit code: 0, or 1 after printing "ERROR: <msg>" on env.Stderr. It is
// the only place that prints an error; commands return theirs. start, which
// may be nil, becomes `convox rack start`.
func Run(ctx context.Context, args []string, env Env, start *cobra.Command) int {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if args == nil {
		// cobra would read os.Args instead.
		args = []string{}
	}
	root := newRootCommand(&env, start)
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		code, quiet := exitCode(err)
		if !quiet {
			fmt.Fprintf(env.Stderr, "ERROR: %s\n", errorMessage(err))
		}
		return code
	}
	return 0
}

// newRootCommand builds the whole command tree.
func newRootCommand(env *Env, start *cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "convox",
		Short: "Deploy and run apps on a single-host Convox rack",
		Long: `convox deploys and runs apps on a Convox-compatible rack on one Docker host.

Start the rack with "convox rack start"; other commands talk to it at
RACK_URL (https://convox:PASSWORD@host:port), else at the rack started on
this machine.`,
		// Errors are printed once, by Run; usage is for --help.
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
	}
	root.AddCommand(
		newAppsCommand(env),
		newBuildCommand(env),
		newBalancersCommand(env),
		newBuildsCommand(env),
		newDeployCommand(env),
		newEnvCommand(env),
		newExecCommand(env),
		newLogsCommand(env),
		newPsCommand(env),
		newReleasesCommand(env),
		newRestartCommand(env),
		newRunCommand(env),
		newScaleCommand(env),
		newServicesCommand(env),
		newRackCommand(env, start),
		newVersionCommand(env),
		newAPICommand(env),
	)
	return root
}

// errorMessage is what the user reads after "ERROR: ".
func errorMessage(err error) string {
	var ce *api.ConnError
	if errors.As(err, &ce) {
		return fmt.Sprintf("rack not reachable at %s: is \"convox rack start\" running?", api.Redact(ce.URL))
	}
	return err.Error()
}
