package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/serve"
)

// serveFlags are serve's flags that runServe turns into a serve.Config.
type serveFlags struct {
	socket, cap, budget, jailMem string
	grace                        time.Duration
}

func init() {
	var (
		cfg serve.Config
		fl  serveFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the host daemon: start, list and stop instances through an HTTP/JSON API on a Unix socket",
		Long: `Serve runs until SIGTERM or SIGINT, answering the API of internal/api on a
Unix socket (mode 0600): start instances of pooled unikernels, list them
with their state, stop one, fetch one's console output and exit status, and
the host's metrics. ` + "`unipool run --host`, `unipool ps`, `unipool stop` and `unipool logs`" + ` are
its clients.

Each instance's console output is kept up to --console-cap bytes, and the
caps of all live and retained instances count against --console-budget: a
start that would overrun it is refused. An instance started without a
timeout gets --default-timeout. On SIGTERM the daemon starts nothing new,
gives running instances --grace to finish, stops the rest, and exits 0.

With --vms-per-process N the instances run in jails, as Firecracker's jailer
runs a microVM: each request's instances are split into processes of at most
N, each in its own user, mount, PID, IPC, UTS and network namespaces, its
root (pivoted to, read-only) a directory under --jail-dir holding only the
pool blobs its instances map, its root user an unprivileged host uid of its
own (from --jail-uid on), in its own cgroup limited to --jail-memory. A jail
that dies fails its own instances only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd, cfg, fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.socket, "socket", serve.DefaultSocket(), "the API's Unix socket ($UNIPOOL_SOCKET)")
	f.StringVar(&cfg.Monitor, "monitor", "process", "monitor: process or kvm")
	f.StringVar(&cfg.Pool, "pool", "", "pool directory (default $"+pool.EnvPool+", else ~/.local/share/unipool/pool)")
	f.DurationVar(&cfg.DefaultTimeout, "default-timeout", 5*time.Minute, "timeout of an instance started without one")
	f.StringVar(&fl.cap, "console-cap", "1M", "console output kept per instance")
	f.StringVar(&fl.budget, "console-budget", "1G", "console output kept over all live and retained instances")
	f.IntVar(&cfg.MaxLive, "max-instances", 20000, "instances pending or running at once")
	f.IntVar(&cfg.Retain, "retain", 20000, "finished instances kept for ps and logs (oldest forgotten first)")
	f.DurationVar(&fl.grace, "grace", 10*time.Second, "on SIGTERM, how long running instances may go on before they are stopped")
	f.IntVar(&cfg.VMsPerProcess, "vms-per-process", 0, "run instances in jails of at most N (0: all in the daemon's process)")
	f.StringVar(&cfg.JailDir, "jail-dir", "", "where the jails' root directories are made (default POOL/.jail; must be on the pool's file system)")
	f.IntVar(&cfg.JailUID, "jail-uid", 900000, "first host uid (and gid) given to jails; each jail gets its own")
	f.StringVar(&fl.jailMem, "jail-memory", "", "each jail's cgroup memory limit (e.g. 512M; default none)")
	commands = append(commands, cmd)
}

// runServe runs the daemon until SIGTERM or SIGINT.
func runServe(cmd *cobra.Command, cfg serve.Config, fl serveFlags) error {
	var err error
	if cfg.Pool == "" {
		if cfg.Pool, err = pool.DefaultDir(); err != nil {
			return err
		}
	}
	n, err := poolParseSize(fl.cap)
	if err != nil {
		return fmt.Errorf("--console-cap: %w", err)
	}
	cfg.ConsoleCap = int(n)
	if n, err = poolParseSize(fl.budget); err != nil {
		return fmt.Errorf("--console-budget: %w", err)
	}
	cfg.ConsoleBudget = int64(n)
	if fl.jailMem != "" {
		if n, err = poolParseSize(fl.jailMem); err != nil {
			return fmt.Errorf("--jail-memory: %w", err)
		}
		cfg.JailMemory = int64(n)
	}
	cfg.Version = version
	d, err := serve.New(cfg)
	if err != nil {
		return err
	}
	l, err := serve.Listen(fl.socket)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(cmd.ErrOrStderr(), "unipool: serving %s monitor, pool %s, on %s\n", cfg.Monitor, cfg.Pool, fl.socket)
	err = d.Serve(ctx, l, fl.grace)
	fmt.Fprintf(cmd.ErrOrStderr(), "unipool: daemon on %s stopped\n", fl.socket)
	return err
}
