package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

type logsOptions struct {
	app      string
	filter   string
	since    time.Duration
	noFollow bool
	// tail is the number of last lines of history; nil is the rack's
	// choice.
	tail    *int
	service string
}

func newLogsCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts logsOptions
	var tail int
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show an app's logs and follow them",
		Long: `Logs prints the app's log lines, "<time> <stream> <message>", where the stream
is service/<service>/<process> for what processes print and system/… for the
rack's events, then follows new lines until interrupted.`,
		Example: `  convox logs --since 10m --no-follow
  convox logs -s web --filter GET`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app = app
			if cmd.Flags().Changed("tail") {
				opts.tail = &tail
			}
			return runLogs(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	cmd.Flags().StringVar(&opts.filter, "filter", "", "only lines containing this text")
	cmd.Flags().DurationVar(&opts.since, "since", 2*time.Minute, "how far back the history starts")
	cmd.Flags().BoolVar(&opts.noFollow, "no-follow", false, "stop at the end of the history")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines of the history")
	cmd.Flags().StringVarP(&opts.service, "service", "s", "", "only this service's lines")
	return cmd
}

func runLogs(ctx context.Context, env *Env, opts logsOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	follow, prefix := !opts.noFollow, true
	logs, err := r.AppLogs(ctx, opts.app, api.LogsOptions{
		Filter: opts.filter,
		Follow: &follow,
		Prefix: &prefix,
		Since:  &opts.since,
		Tail:   opts.tail,
	})
	if err != nil {
		return err
	}
	defer logs.Close()
	if opts.service == "" {
		return copyStream(ctx, env.Stdout, logs)
	}
	// The rack will serve one service's log itself (spec §2.3); until
	// then the lines of the others are dropped here.
	stream := "service/" + opts.service + "/"
	br := bufio.NewReader(logs)
	for {
		line, err := br.ReadString('\n')
		if fields := strings.SplitN(line, " ", 3); len(fields) == 3 && strings.HasPrefix(fields[1], stream) {
			if _, werr := io.WriteString(env.Stdout, line); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) || err != nil && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
