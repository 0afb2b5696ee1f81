package cli

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

type buildsOptions struct {
	app   string
	limit int
}

func newBuildsCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts buildsOptions
	cmd := &cobra.Command{
		Use:   "builds",
		Short: "List an app's builds, or manage one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			return runBuilds(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	cmd.Flags().IntVarP(&opts.limit, "limit", "l", 10, "number of builds to list, newest first")
	cmd.AddCommand(
		newBuildsInfoCommand(env, &flags),
		newBuildsLogsCommand(env, &flags),
		newBuildsExportCommand(env, &flags),
		newBuildsImportCommand(env, &flags),
	)
	return cmd
}

func runBuilds(ctx context.Context, env *Env, opts buildsOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	bs, err := r.BuildList(ctx, opts.app, opts.limit)
	if err != nil {
		return err
	}
	now := env.now()
	rows := make([][]string, 0, len(bs))
	for _, b := range bs {
		rows = append(rows, []string{b.Id, b.Status, b.Release, ago(now, b.Started), elapsed(b.Started, b.Ended), b.Description})
	}
	return writeTable(env.Stdout, []string{"ID", "STATUS", "RELEASE", "STARTED", "ELAPSED", "DESCRIPTION"}, rows)
}

// buildRef names one build of an app.
type buildRef struct {
	app, id string
}

// newBuildRefCommand builds a subcommand of builds that takes one build id.
func newBuildRefCommand(env *Env, flags *appFlags, use, short string, run func(ctx context.Context, env *Env, ref buildRef) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			return run(cmd.Context(), env, buildRef{app: app, id: args[0]})
		},
	}
}

func newBuildsInfoCommand(env *Env, flags *appFlags) *cobra.Command {
	return newBuildRefCommand(env, flags, "info <build>", "Show a build", runBuildsInfo)
}

func runBuildsInfo(ctx context.Context, env *Env, ref buildRef) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	b, err := r.BuildGet(ctx, ref.app, ref.id)
	if err != nil {
		return err
	}
	return writeInfo(env.Stdout, []field{
		{"Id", b.Id},
		{"Status", b.Status},
		{"Release", b.Release},
		{"Description", b.Description},
		{"Started", ago(env.now(), b.Started)},
		{"Elapsed", elapsed(b.Started, b.Ended)},
	})
}

func newBuildsLogsCommand(env *Env, flags *appFlags) *cobra.Command {
	return newBuildRefCommand(env, flags, "logs <build>", "Show a build's log (live while it runs)", runBuildsLogs)
}

func runBuildsLogs(ctx context.Context, env *Env, ref buildRef) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	logs, err := r.BuildLogs(ctx, ref.app, ref.id, api.LogsOptions{})
	if err != nil {
		return err
	}
	defer logs.Close()
	return copyStream(ctx, env.Stdout, logs)
}

type buildsExportOptions struct {
	buildRef
	file string
}

func newBuildsExportCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts buildsExportOptions
	cmd := &cobra.Command{
		Use:   "export <build>",
		Short: "Export a build (its images and manifest) to a file",
		Example: `  convox builds export BABCDEFGHI -f build.tgz
  convox builds export BABCDEFGHI > build.tgz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.buildRef = buildRef{app: app, id: args[0]}
			return runBuildsExport(cmd.Context(), env, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.file, "file", "f", "", "file to write (default: stdout, which must not be a terminal)")
	return cmd
}

// runBuildsExport writes the export to the file, or to stdout with the
// progress on stderr.
func runBuildsExport(ctx context.Context, env *Env, opts buildsExportOptions) error {
	w, out := env.Stdout, env.Stdout
	if opts.file == "" {
		if isTerminal(env.Stdout) {
			return errors.New("pipe this command into a file or specify --file")
		}
		w = env.Stderr
	}
	r, err := env.rack()
	if err != nil {
		return err
	}
	var f *os.File
	if opts.file != "" {
		if f, err = os.Create(env.path(opts.file)); err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	startf(w, "Exporting build")
	err = r.BuildExport(ctx, opts.app, opts.id, out)
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}
	if err != nil {
		return err
	}
	ok(w)
	return nil
}

type buildsImportOptions struct {
	app  string
	file string
	id   bool
}

func newBuildsImportCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts buildsImportOptions
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import an exported build as a new build and release",
		Example: `  convox builds import -f build.tgz
  convox builds import < build.tgz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			return runBuildsImport(cmd.Context(), env, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.file, "file", "f", "", "file to read (default: stdin, which must not be a terminal)")
	cmd.Flags().BoolVar(&opts.id, "id", false, "print only the release id on stdout, progress on stderr")
	return cmd
}

func runBuildsImport(ctx context.Context, env *Env, opts buildsImportOptions) error {
	in := env.Stdin
	if opts.file != "" {
		f, err := os.Open(env.path(opts.file))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else if isTerminal(env.Stdin) {
		return errors.New("pipe a file into this command or specify --file")
	}
	r, err := env.rack()
	if err != nil {
		return err
	}
	w := progress(env, opts.id)
	startf(w, "Importing build")
	b, err := r.BuildImport(ctx, opts.app, in)
	if err != nil {
		return err
	}
	ok(w, b.Release)
	printID(env, opts.id, b.Release)
	return nil
}

// copyStream copies a log stream to w until it ends, or until the user
// interrupts, which is not an error.
func copyStream(ctx context.Context, w io.Writer, r io.Reader) error {
	_, err := io.Copy(w, r)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
