package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newAPICommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Call the rack API directly",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newAPIGetCommand(env))
	return cmd
}

type apiGetOptions struct {
	path string
}

func newAPIGetCommand(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "get <path>",
		Short: "GET a path of the rack API and print the JSON it returns",
		Example: `  convox api get /apps
  convox api get /apps/myapp/releases`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAPIGet(cmd.Context(), env, apiGetOptions{path: args[0]})
		},
	}
}

// runAPIGet re-marshals the reply as Convox does, so object keys come out
// sorted and indented by two spaces (spec §3.10). Numbers are kept as sent.
func runAPIGet(ctx context.Context, env *Env, opts apiGetOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	path := opts.path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	data, err := r.Get(ctx, path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%s did not return JSON: %w", path, err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = env.Stdout.Write(append(out, '\n'))
	return err
}
