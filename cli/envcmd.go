package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

// `convox env`: an app's environment is the env of its releases. Every
// change makes a new release from the latest one (not the active one: spec
// §7), which --promote then deploys.

type envOptions struct {
	app string
	// release reads (and for changes, starts from) this release instead of
	// the latest.
	release string
}

func newEnvCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts envOptions
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Show an app's environment, or change it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			return runEnv(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	addReleaseFlag(cmd, &opts.release)
	cmd.AddCommand(
		newEnvGetCommand(env, &flags),
		newEnvSetCommand(env, &flags),
		newEnvUnsetCommand(env, &flags),
		newEnvEditCommand(env, &flags),
	)
	return cmd
}

func addReleaseFlag(cmd *cobra.Command, release *string) {
	cmd.Flags().StringVar(release, "release", "", "use this release's env instead of the latest release's")
}

func runEnv(ctx context.Context, env *Env, opts envOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	vars, err := appEnv(ctx, r, opts.app, opts.release)
	if err != nil || len(vars) == 0 {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, formatEnv(vars))
	return err
}

type envGetOptions struct {
	envOptions
	key string
}

func newEnvGetCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts envGetOptions
	cmd := &cobra.Command{
		Use:   "get <key>",
		Short: "Show one variable of an app's environment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app, opts.key = app, args[0]
			return runEnvGet(cmd.Context(), env, opts)
		},
	}
	addReleaseFlag(cmd, &opts.release)
	return cmd
}

func runEnvGet(ctx context.Context, env *Env, opts envGetOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	vars, err := appEnv(ctx, r, opts.app, opts.release)
	if err != nil {
		return err
	}
	v, ok := vars[opts.key]
	if !ok {
		return fmt.Errorf("env not found: %s", opts.key)
	}
	_, err = fmt.Fprintln(env.Stdout, v)
	return err
}

// envChangeOptions are the flags of the commands that make a release.
type envChangeOptions struct {
	envOptions
	promote bool
	timeout int
	id      bool
}

func addEnvChangeFlags(cmd *cobra.Command, o *envChangeOptions, id bool) {
	addReleaseFlag(cmd, &o.release)
	cmd.Flags().BoolVarP(&o.promote, "promote", "p", false, "promote the new release")
	cmd.Flags().IntVar(&o.timeout, "timeout", 0, "with --promote: seconds the new processes have to become healthy (default: the rack's)")
	if id {
		cmd.Flags().BoolVar(&o.id, "id", false, "print only the new release id on stdout, progress on stderr")
	}
}

type envSetOptions struct {
	envChangeOptions
	// pairs are KEY=VALUE; anything without "=" is ignored, as in Convox.
	pairs   []string
	replace bool
}

func newEnvSetCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts envSetOptions
	cmd := &cobra.Command{
		Use:   "set <key=value>...",
		Short: "Set variables of an app's environment in a new release",
		Long: `Set makes a new release whose env is the latest release's with the given
variables set. KEY=VALUE lines are also read from stdin when it is not a
terminal.`,
		Example: `  convox env set FOO=bar BAZ=quux
  convox env set --replace < .env
  convox env set GREETING=hello --promote`,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app, opts.pairs = app, args
			return runEnvSet(cmd.Context(), env, opts)
		},
	}
	addEnvChangeFlags(cmd, &opts.envChangeOptions, true)
	cmd.Flags().BoolVar(&opts.replace, "replace", false, "replace the whole environment with the given variables")
	return cmd
}

func runEnvSet(ctx context.Context, env *Env, opts envSetOptions) error {
	pairs := opts.pairs
	if !isTerminal(env.Stdin) {
		sc := bufio.NewScanner(env.Stdin)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			pairs = append(pairs, strings.TrimSuffix(sc.Text(), "\r"))
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
	}
	r, err := env.rack()
	if err != nil {
		return err
	}
	vars := map[string]string{}
	if !opts.replace {
		if vars, err = appEnv(ctx, r, opts.app, opts.release); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	for _, p := range pairs {
		if k, v, ok := strings.Cut(p, "="); ok && strings.TrimSpace(k) != "" {
			k = strings.TrimSpace(k)
			vars[k], set[k] = v, true
		}
	}
	w := progress(env, opts.id)
	startf(w, "Setting %s", strings.Join(slices.Sorted(maps.Keys(set)), ", "))
	return changeEnv(ctx, env, r, w, opts.envChangeOptions, vars)
}

type envUnsetOptions struct {
	envChangeOptions
	keys []string
}

func newEnvUnsetCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts envUnsetOptions
	cmd := &cobra.Command{
		Use:   "unset <key>...",
		Short: "Remove variables from an app's environment in a new release",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app, opts.keys = app, args
			return runEnvUnset(cmd.Context(), env, opts)
		},
	}
	addEnvChangeFlags(cmd, &opts.envChangeOptions, true)
	return cmd
}

func runEnvUnset(ctx context.Context, env *Env, opts envUnsetOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	vars, err := appEnv(ctx, r, opts.app, opts.release)
	if err != nil {
		return err
	}
	for _, k := range opts.keys {
		delete(vars, k)
	}
	keys := slices.Clone(opts.keys)
	slices.Sort(keys)
	w := progress(env, opts.id)
	startf(w, "Unsetting %s", strings.Join(slices.Compact(keys), ", "))
	return changeEnv(ctx, env, r, w, opts.envChangeOptions, vars)
}

func newEnvEditCommand(env *Env, flags *appFlags) *cobra.Command {
	var opts envChangeOptions
	cmd := &cobra.Command{
		Use:   "edit",
		Short: "Edit an app's environment in $EDITOR and save it as a new release",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			return runEnvEdit(cmd.Context(), env, opts)
		},
	}
	addEnvChangeFlags(cmd, &opts, false)
	return cmd
}

// runEnvEdit opens the env in $EDITOR (default vi; split at spaces, so
// "code --wait" works), then saves what was written as the whole env. It
// names the variables that were added or changed, or, when there are none,
// the ones removed; an env left as it was makes no release.
func runEnvEdit(ctx context.Context, env *Env, opts envChangeOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	old, err := appEnv(ctx, r, opts.app, opts.release)
	if err != nil {
		return err
	}
	edited, err := editEnv(ctx, env, opts.app, old)
	if err != nil {
		return err
	}
	var changed, removed []string
	for k, v := range edited {
		if ov, ok := old[k]; !ok || ov != v {
			changed = append(changed, k)
		}
	}
	for k := range old {
		if _, ok := edited[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.Sort(changed)
	slices.Sort(removed)
	switch {
	case len(changed) > 0:
		startf(env.Stdout, "Setting %s", strings.Join(changed, ", "))
	case len(removed) > 0:
		startf(env.Stdout, "Unsetting %s", strings.Join(removed, ", "))
	default:
		_, err := fmt.Fprintln(env.Stdout, "No changes")
		return err
	}
	return changeEnv(ctx, env, r, env.Stdout, opts, edited)
}

// editEnv writes vars to a private temporary file, runs the editor on it
// with the user's terminal, and reads it back.
func editEnv(ctx context.Context, env *Env, app string, vars map[string]string) (map[string]string, error) {
	dir, err := os.MkdirTemp("", "convox-env-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, app+".env")
	text := formatEnv(vars)
	if text != "" {
		text += "\n"
	}
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		return nil, err
	}
	argv := strings.Fields(env.Getenv("EDITOR"))
	if len(argv) == 0 {
		argv = []string{"vi"}
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], file)...)
	cmd.Dir = env.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.Stdin, env.Stdout, env.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("editing the env with %s: %w", argv[0], err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseEnv(string(data)), nil
}

// changeEnv finishes the step its caller began ("Setting FOO... ") by
// creating a release with vars as its whole env, then names the release
// and promotes it if asked:
//
//	Setting FOO... OK
//	Release: RABCDEFGHI
func changeEnv(ctx context.Context, env *Env, r api.Rack, w io.Writer, opts envChangeOptions, vars map[string]string) error {
	text := formatEnv(vars)
	ropts := api.ReleaseCreateOptions{Env: &text}
	if opts.release != "" {
		ropts.ParentRelease = &opts.release
	}
	rel, err := r.ReleaseCreate(ctx, opts.app, ropts)
	if err != nil {
		return err
	}
	ok(w)
	fmt.Fprintf(w, "Release: %s\n", rel.Id)
	if opts.promote {
		if err := promote(ctx, r, w, opts.app, rel.Id, promoteOptions{timeout: opts.timeout}); err != nil {
			return err
		}
	}
	printID(env, opts.id, rel.Id)
	return nil
}

// appEnv is the env of release, or of the app's latest release when
// release is "" (empty for an app without releases).
func appEnv(ctx context.Context, r api.Rack, app, release string) (map[string]string, error) {
	if release == "" {
		rs, err := r.ReleaseList(ctx, app, 1)
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 {
			return map[string]string{}, nil
		}
		release = rs[0].Id
	}
	rel, err := r.ReleaseGet(ctx, app, release)
	if err != nil {
		return nil, err
	}
	return parseEnv(rel.Env), nil
}

// parseEnv reads KEY=VALUE lines; a value runs to the end of its line and
// may hold "=". Lines without "=" and comments are skipped.
func parseEnv(text string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			if k = strings.TrimSpace(k); k != "" {
				vars[k] = v
			}
		}
	}
	return vars
}

// formatEnv is the env text of a release: KEY=VALUE lines sorted by key,
// without a final newline.
func formatEnv(vars map[string]string) string {
	lines := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		lines = append(lines, k+"="+vars[k])
	}
	return strings.Join(lines, "\n")
}
