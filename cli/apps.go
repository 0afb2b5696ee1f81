package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

// appFlags are the persistent flags of a noun whose commands act on an app.
type appFlags struct {
	app string
}

// addAppFlags adds --app/-a, and the hidden no-op --wait/-w that Convox keeps
// for v2 scripts (the v3 CLI always waits, and so do we: the rack answers
// when it is done).
func addAppFlags(cmd *cobra.Command, f *appFlags) {
	fs := cmd.PersistentFlags()
	fs.StringVarP(&f.app, "app", "a", "", "app name (default: ./.convox/app, else the directory's name)")
	fs.BoolP("wait", "w", false, "wait for completion (always on; kept for compatibility)")
	_ = fs.MarkHidden("wait")
}

func newAppsCommand(env *Env) *cobra.Command {
	var flags appFlags
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "List apps, or manage one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApps(cmd.Context(), env)
		},
	}
	addAppFlags(cmd, &flags)
	cmd.AddCommand(
		newAppsCreateCommand(env, &flags),
		newAppsInfoCommand(env, &flags),
		newAppsDeleteCommand(env),
		newAppsLockCommand(env, &flags, true),
		newAppsLockCommand(env, &flags, false),
		newAppsCancelCommand(env, &flags),
	)
	return cmd
}

func runApps(ctx context.Context, env *Env) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	apps, err := r.AppList(ctx)
	if err != nil {
		return err
	}
	rows := make([][]string, 0, len(apps))
	for _, a := range apps {
		rows = append(rows, []string{a.Name, a.Status, a.Release})
	}
	return writeTable(env.Stdout, []string{"APP", "STATUS", "RELEASE"}, rows)
}

type appsCreateOptions struct {
	app string
}

func newAppsCreateCommand(env *Env, flags *appFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "create [app]",
		Short: "Create an app",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(args, flags.app)
			if err != nil {
				return err
			}
			return runAppsCreate(cmd.Context(), env, appsCreateOptions{app: app})
		},
	}
}

func runAppsCreate(ctx context.Context, env *Env, opts appsCreateOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	startf(env.Stdout, "Creating %s", opts.app)
	if _, err := r.AppCreate(ctx, opts.app); err != nil {
		return err
	}
	ok(env.Stdout)
	return nil
}

type appsInfoOptions struct {
	app string
}

func newAppsInfoCommand(env *Env, flags *appFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "info [app]",
		Short: "Show an app",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(args, flags.app)
			if err != nil {
				return err
			}
			return runAppsInfo(cmd.Context(), env, appsInfoOptions{app: app})
		},
	}
}

func runAppsInfo(ctx context.Context, env *Env, opts appsInfoOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	a, err := r.AppGet(ctx, opts.app)
	if err != nil {
		return err
	}
	// The fields the project's issue shows: Convox's without Generation.
	fields := []field{
		{"Name", a.Name},
		{"Status", a.Status},
		{"Locked", strconv.FormatBool(a.Locked)},
		{"Release", a.Release},
	}
	if a.Router != "" {
		fields = append(fields, field{"Router", a.Router})
	}
	return writeInfo(env.Stdout, fields)
}

type appsDeleteOptions struct {
	app string
}

// newAppsDeleteCommand takes the app only as an argument, as Convox does:
// deleting is the one command that must not guess the app from the
// directory.
func newAppsDeleteCommand(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "delete <app>",
		Short: "Delete an app and everything it runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAppsDelete(cmd.Context(), env, appsDeleteOptions{app: args[0]})
		},
	}
}

func runAppsDelete(ctx context.Context, env *Env, opts appsDeleteOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	startf(env.Stdout, "Deleting %s", opts.app)
	err = r.AppDelete(ctx, opts.app)
	if errors.Is(err, api.ErrConflict) {
		// Say how to get out of it, but only when the lock is the reason.
		if a, gerr := r.AppGet(ctx, opts.app); gerr == nil && a.Locked {
			return fmt.Errorf("%w (run \"convox apps unlock %s\" to allow deleting it)", err, opts.app)
		}
	}
	if err != nil {
		return err
	}
	ok(env.Stdout)
	return nil
}

type appsLockOptions struct {
	app  string
	lock bool
}

// newAppsLockCommand builds `apps lock` (lock true) or `apps unlock`. A
// locked app cannot be deleted.
func newAppsLockCommand(env *Env, flags *appFlags, lock bool) *cobra.Command {
	use, short := "lock [app]", "Lock an app against deletion"
	if !lock {
		use, short = "unlock [app]", "Unlock an app so that it can be deleted"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(args, flags.app)
			if err != nil {
				return err
			}
			return runAppsLock(cmd.Context(), env, appsLockOptions{app: app, lock: lock})
		},
	}
}

func runAppsLock(ctx context.Context, env *Env, opts appsLockOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	if opts.lock {
		startf(env.Stdout, "Locking %s", opts.app)
	} else {
		startf(env.Stdout, "Unlocking %s", opts.app)
	}
	if err := r.AppUpdate(ctx, opts.app, api.AppUpdateOptions{Lock: &opts.lock}); err != nil {
		return err
	}
	ok(env.Stdout)
	return nil
}

type appsCancelOptions struct {
	app string
}

func newAppsCancelCommand(env *Env, flags *appFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel [app]",
		Short: "Cancel an app's deployment in progress",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(args, flags.app)
			if err != nil {
				return err
			}
			return runAppsCancel(cmd.Context(), env, appsCancelOptions{app: app})
		},
	}
}

func runAppsCancel(ctx context.Context, env *Env, opts appsCancelOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	startf(env.Stdout, "Cancelling deployment of %s", opts.app)
	if err := r.AppCancel(ctx, opts.app); err != nil {
		return err
	}
	ok(env.Stdout)
	return nil
}
