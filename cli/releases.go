package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

type releasesOptions struct {
	app   string
	limit int
}

func newReleasesCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts releasesOptions
	cmd := &cobra.Command{
		Use:   "releases",
		Short: "List an app's releases, or manage one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			return runReleases(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	cmd.Flags().IntVarP(&opts.limit, "limit", "l", 10, "number of releases to list, newest first")
	cmd.AddCommand(
		newReleasesInfoCommand(env, &flags),
		newReleasesManifestCommand(env, &flags),
		newReleasesPromoteCommand(env, &flags),
		newReleasesRollbackCommand(env, &flags),
	)
	return cmd
}

func runReleases(ctx context.Context, env *Env, opts releasesOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	a, err := r.AppGet(ctx, opts.app)
	if err != nil {
		return err
	}
	rs, err := r.ReleaseList(ctx, opts.app, opts.limit)
	if err != nil {
		return err
	}
	now := env.now()
	rows := make([][]string, 0, len(rs))
	for _, rel := range rs {
		status := ""
		if rel.Id == a.Release {
			status = "active"
		}
		rows = append(rows, []string{rel.Id, status, rel.Build, ago(now, rel.Created), rel.Description})
	}
	return writeTable(env.Stdout, []string{"ID", "STATUS", "BUILD", "CREATED", "DESCRIPTION"}, rows)
}

// releaseRef names one release of an app.
type releaseRef struct {
	app, id string
}

func newReleasesInfoCommand(env *Env, flags *appFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "info <release>",
		Short: "Show a release",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			return runReleasesInfo(cmd.Context(), env, releaseRef{app: app, id: args[0]})
		},
	}
}

func runReleasesInfo(ctx context.Context, env *Env, ref releaseRef) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	rel, err := r.ReleaseGet(ctx, ref.app, ref.id)
	if err != nil {
		return err
	}
	return writeInfo(env.Stdout, []field{
		{"Id", rel.Id},
		{"Build", rel.Build},
		{"Created", rel.Created.UTC().Format(time.RFC3339)},
		{"Description", rel.Description},
		{"Env", rel.Env},
	})
}

func newReleasesManifestCommand(env *Env, flags *appFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "manifest <release>",
		Short: "Show the convox.yml a release was built from",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			return runReleasesManifest(cmd.Context(), env, releaseRef{app: app, id: args[0]})
		},
	}
}

// runReleasesManifest prints the manifest of the release's build, as Convox
// does, rather than the copy the release keeps.
func runReleasesManifest(ctx context.Context, env *Env, ref releaseRef) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	rel, err := r.ReleaseGet(ctx, ref.app, ref.id)
	if err != nil {
		return err
	}
	if rel.Build == "" {
		return fmt.Errorf("no build for release: %s", ref.id)
	}
	b, err := r.BuildGet(ctx, ref.app, rel.Build)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, strings.TrimSpace(b.Manifest))
	return err
}

type releasesPromoteOptions struct {
	app string
	// id is the release; "" is the newest.
	id      string
	promote promoteOptions
}

func newReleasesPromoteCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts releasesPromoteOptions
	cmd := &cobra.Command{
		Use:   "promote [release]",
		Short: "Deploy a release (default: the newest)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			if len(args) > 0 {
				opts.id = args[0]
			}
			return runReleasesPromote(cmd.Context(), env, opts)
		},
	}
	addPromoteFlags(cmd, &opts.promote)
	return cmd
}

func runReleasesPromote(ctx context.Context, env *Env, opts releasesPromoteOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	id := opts.id
	if id == "" {
		rs, err := r.ReleaseList(ctx, opts.app, 1)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("no releases for app: %s", opts.app)
		}
		id = rs[0].Id
	}
	return promote(ctx, r, env.Stdout, opts.app, id, opts.promote)
}

type releasesRollbackOptions struct {
	releaseRef
	promote promoteOptions
	id      bool
}

func newReleasesRollbackCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts releasesRollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback <release>",
		Short: "Copy an old release forward and promote the copy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.releaseRef = releaseRef{app: app, id: args[0]}
			return runReleasesRollback(cmd.Context(), env, opts)
		},
	}
	addPromoteFlags(cmd, &opts.promote)
	cmd.Flags().BoolVar(&opts.id, "id", false, "print only the new release id on stdout, progress on stderr")
	return cmd
}

// runReleasesRollback makes a new release with the old one's build and env
// and promotes it (spec §4.3); the old release itself is left as it was.
func runReleasesRollback(ctx context.Context, env *Env, opts releasesRollbackOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	w := progress(env, opts.id)
	startf(w, "Rolling back to %s", opts.releaseRef.id)
	old, err := r.ReleaseGet(ctx, opts.app, opts.releaseRef.id)
	if err != nil {
		return err
	}
	rel, err := r.ReleaseCreate(ctx, opts.app, api.ReleaseCreateOptions{Build: &old.Build, Env: &old.Env})
	if err != nil {
		return err
	}
	ok(w, rel.Id)
	if err := promote(ctx, r, w, opts.app, rel.Id, opts.promote); err != nil {
		return err
	}
	printID(env, opts.id, rel.Id)
	return nil
}
