package rack

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

// StartCommand is `convox rack start`. The cli package grafts it under
// `convox rack`, so the CLI never imports the daemon.
func StartCommand() *cobra.Command {
	var (
		cfg    Config
		images []string
		env    envDefaults
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run the rack daemon in the foreground",
		Long: `Run the rack daemon in the foreground: the rack API, and the apps it runs as
Docker containers. Stop it with Ctrl-C or SIGTERM; containers keep running and
are adopted by the next start.

Every flag can also be set in the environment variable shown in brackets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if env.err != nil {
				return env.err
			}
			var err error
			if cfg.Home == "" {
				if cfg.Home, err = api.Home(); err != nil {
					return err
				}
			}
			if cfg.ResourceImages, err = parseImages(images); err != nil {
				return err
			}
			if cfg.ProxyLoops < 0 {
				return fmt.Errorf("invalid --proxy-loops %d: want 0 (one per two CPUs) or more", cfg.ProxyLoops)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return Run(cmd.Context(), cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Home, "home", os.Getenv("CONVOX_HOME"), "data directory [CONVOX_HOME] (default ~/.local/share/convox)")
	f.StringVar(&cfg.Listen, "listen", envOr("CONVOX_LISTEN", "127.0.0.1:5443"), "address of the rack API [CONVOX_LISTEN]")
	f.StringVar(&cfg.Name, "name", envOr("CONVOX_RACK_NAME", "local"), "rack name, as the Convox CLI lists it [CONVOX_RACK_NAME]")
	f.StringVar(&cfg.Domain, "domain", envOr("CONVOX_DOMAIN", "localhost"), "router domain: services answer at <service>.<app>.<domain> [CONVOX_DOMAIN]")
	f.StringVar(&cfg.RouterHTTP, "router-http", envOr("CONVOX_ROUTER_HTTP", defaultRouterHTTP), "address of the HTTP router [CONVOX_ROUTER_HTTP] (falls back to "+fallbackRouterHTTP+" when the default cannot be bound)")
	f.StringVar(&cfg.RouterHTTPS, "router-https", envOr("CONVOX_ROUTER_HTTPS", defaultRouterHTTPS), "address of the HTTPS router [CONVOX_ROUTER_HTTPS] (falls back to "+fallbackRouterHTTPS+" when the default cannot be bound)")
	f.Int64Var(&cfg.LogBytes, "log-max-bytes", env.int("CONVOX_LOG_MAX_BYTES"), "bytes of logs kept per app, oldest dropped first; 0 means 64 MiB [CONVOX_LOG_MAX_BYTES]")
	f.StringVar(&cfg.BalancerBind, "balancer-bind", os.Getenv("CONVOX_BALANCER_BIND"), "address balancers listen on; empty means every interface [CONVOX_BALANCER_BIND]")
	f.StringVar(&cfg.ACMEDirectory, "acme-directory", os.Getenv("CONVOX_ACME_DIRECTORY"), "get certificates of services' custom domains (manifest domain:) from this ACME directory URL, accepting its CA's terms of service; letsencrypt and letsencrypt-staging name Let's Encrypt's; empty means the rack CA signs them [CONVOX_ACME_DIRECTORY]")
	f.StringVar(&cfg.ACMEEmail, "acme-email", os.Getenv("CONVOX_ACME_EMAIL"), "contact address of the ACME account, for notices from the CA [CONVOX_ACME_EMAIL]")
	f.StringVar(&cfg.ACMECAFile, "acme-ca-file", os.Getenv("CONVOX_ACME_CA_FILE"), "PEM file of extra CAs to trust for the HTTPS of the ACME directory, such as a test CA's [CONVOX_ACME_CA_FILE]")
	f.DurationVar(&cfg.PromoteTimeout, "promote-timeout", env.duration("CONVOX_PROMOTE_TIMEOUT", 5*time.Minute), "how long a rollout (deploy, restart, scale) may take to get healthy processes before it rolls back, unless promote --timeout says otherwise [CONVOX_PROMOTE_TIMEOUT]")
	f.IntVar(&cfg.ProxyLoops, "proxy-loops", int(env.int("CONVOX_PROXY_LOOPS")), "event loops of each router listener and of the balancers, on Linux; 0 means one per two CPUs, leaving the others to the apps [CONVOX_PROXY_LOOPS]")
	f.StringSliceVar(&images, "resource-image", splitList(os.Getenv("CONVOX_RESOURCE_IMAGES")), "image for a resource type, TYPE=IMAGE, repeatable [CONVOX_RESOURCE_IMAGES, comma-separated]")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// envDefaults reads flag defaults from the environment and keeps the first
// value it could not read: start refuses it rather than run on a default
// the user did not ask for.
type envDefaults struct{ err error }

func (e *envDefaults) int(key string) int64 {
	v := os.Getenv(key)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(fmt.Errorf("invalid %s %q: want a whole number", key, v))
	}
	return n
}

func (e *envDefaults) duration(key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(fmt.Errorf("invalid %s %q: want a duration such as 5m or 90s", key, v))
		return def
	}
	return d
}

func (e *envDefaults) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// parseImages reads TYPE=IMAGE pairs.
func parseImages(pairs []string) (map[string]string, error) {
	images := map[string]string{}
	for _, p := range pairs {
		kind, img, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || kind == "" || img == "" {
			return nil, fmt.Errorf("invalid --resource-image %q: want TYPE=IMAGE, e.g. postgres=postgres:16", p)
		}
		images[kind] = img
	}
	return images, nil
}
