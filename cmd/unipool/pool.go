package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/pool/distribution"
	"github.com/unipool/unipool/internal/snapshot"
)

func init() { commands = append(commands, newPoolCmd()) }

func newPoolCmd() *cobra.Command {
	var pf poolFlags
	poolCmd := &cobra.Command{
		Use:   "pool",
		Short: "Manage the library pool (an OCI image layout of library blobs and unikernel descriptions)",
		Long: "The pool holds one blob per distinct library part and one description per unikernel.\n" +
			"Its directory is --pool, else $" + pool.EnvPool + ", else $XDG_DATA_HOME/unipool/pool\n" +
			"(~/.local/share/unipool/pool).",
	}
	poolCmd.PersistentFlags().StringVar(&pf.dir, "pool", "", "pool directory")
	poolCmd.AddCommand(poolInitCmd(&pf), poolAddCmd(&pf), poolLsCmd(&pf), poolInspectCmd(&pf), poolRmCmd(&pf),
		poolGCCmd(&pf), poolVerifyCmd(&pf), poolStatsCmd(&pf), poolPushCmd(&pf), poolPullCmd(&pf))
	return poolCmd
}

// poolFlags are the flags every pool command shares.
type poolFlags struct{ dir string }

// path is the pool's directory: --pool, else the default.
func (pf *poolFlags) path() (string, error) {
	if pf.dir != "" {
		return pf.dir, nil
	}
	return pool.DefaultDir()
}

func (pf *poolFlags) open() (*pool.Pool, error) {
	d, err := pf.path()
	if err != nil {
		return nil, err
	}
	return pool.Open(d)
}

func poolAddCmd(pf *poolFlags) *cobra.Command {
	var opt pool.AddOptions
	var mem string
	var addJSON, withSnapshot bool
	add := &cobra.Command{
		Use:   "add IMAGE",
		Short: "Take an aligned image apart into the pool (creating the pool if needed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := pf.path()
			if err != nil {
				return err
			}
			o := opt
			if mem != "" {
				if o.MemSize, err = poolParseSize(mem); err != nil {
					return fmt.Errorf("--mem: %w", err)
				}
			}
			res, err := pool.Add(d, args[0], o)
			if err != nil {
				return err
			}
			if withSnapshot {
				sres, err := snapshot.Take(cmd.Context(), d, res.Name, snapshot.Options{Timeout: time.Minute})
				if err != nil {
					return fmt.Errorf("added %s, but its snapshot failed: %w", res.Name, err)
				}
				res.NewBlobs += sres.NewPages + 2
				res.NewBytes += sres.NewBytes
				res.Manifest = digest.Digest(sres.Manifest)
				res.Blobs += sres.Distinct
			}
			if addJSON {
				return poolJSON(cmd.OutOrStdout(), res)
			}
			verb := "added"
			if res.Replaced {
				verb = "replaced"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s, %d blobs (%d new, %s new)\n",
				verb, res.Name, res.Manifest, res.Blobs, res.NewBlobs, poolBytes(res.NewBytes))
			return nil
		},
	}
	add.Flags().StringVar(&opt.Name, "name", "", "unikernel name (default: the image file's base name less .elf)")
	add.Flags().StringVar(&opt.Cmdline, "cmdline", "", "default command line (default: the image's)")
	add.Flags().StringVar(&mem, "mem", "", "default guest memory, e.g. 64M (default: the image's)")
	add.Flags().BoolVar(&addJSON, "json", false, "print the result as JSON")
	add.Flags().BoolVar(&withSnapshot, "snapshot", false, "also take its boot snapshot (`unipool snapshot`)")
	add.Flags().BoolVar(&opt.InitBlobs, "init-blobs", true, "also store each library's tramp table and data as a blob of its own, which the monitors map copy-on-write (shared until written); --init-blobs=false stores them only in the private blob")
	return add
}

func poolLsCmd(pf *poolFlags) *cobra.Command {
	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the pooled unikernels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pf.open()
			if err != nil {
				return err
			}
			rows, err := p.Summaries()
			if err != nil {
				return err
			}
			var bad error
			for _, r := range rows {
				if r.Error != "" {
					bad = errors.New("some descriptions cannot be read: run `unipool pool verify`")
				}
			}
			if lsJSON {
				if err := poolJSON(cmd.OutOrStdout(), rows); err != nil {
					return err
				}
				return bad
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tLIBRARIES\tSIZE\tMANIFEST")
			for _, r := range rows {
				if r.Error != "" {
					fmt.Fprintf(w, "%s\t?\t?\t%s\n", r.Name, r.Error)
					continue
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", r.Name, r.Libraries, poolBytes(r.Bytes), poolShort(string(r.Manifest)))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			return bad
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	return ls
}

func poolInspectCmd(pf *poolFlags) *cobra.Command {
	var inspectJSON bool
	inspect := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a pooled unikernel's description: libraries, regions, blobs, sizes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pf.open()
			if err != nil {
				return err
			}
			d, err := p.Inspect(args[0])
			if err != nil {
				return err
			}
			if inspectJSON {
				return poolJSON(cmd.OutOrStdout(), d)
			}
			return poolPrintDescription(cmd.OutOrStdout(), d)
		},
	}
	inspect.Flags().BoolVar(&inspectJSON, "json", false, "print JSON")
	return inspect
}

func poolRmCmd(pf *poolFlags) *cobra.Command {
	rm := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove unikernels from the pool (their blobs stay until gc)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pf.open()
			if err != nil {
				return err
			}
			for _, n := range args {
				if err := p.Remove(n); err != nil {
					return err
				}
			}
			return nil
		},
	}
	return rm
}

func poolGCCmd(pf *poolFlags) *cobra.Command {
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove blobs no unikernel references, and temporary files of killed commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pf.open()
			if err != nil {
				return err
			}
			res, err := p.GC()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d blobs (%s) and %d temporary files; %d blobs kept\n",
				res.Blobs, poolBytes(res.Bytes), res.TempFiles, res.Kept)
			return nil
		},
	}
	return gc
}

func poolVerifyCmd(pf *poolFlags) *cobra.Command {
	var verifyJSON bool
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every blob and check every description; exit non-zero on any problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pf.open()
			if err != nil {
				return err
			}
			r, err := p.Verify()
			if err != nil {
				return err
			}
			if verifyJSON {
				if err := poolJSON(cmd.OutOrStdout(), r); err != nil {
					return err
				}
			} else {
				for _, pr := range r.Problems {
					fmt.Fprintln(cmd.OutOrStdout(), "BAD", pr)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d blobs, %d unikernels, %d problems\n", r.Blobs, r.Unikernels, len(r.Problems))
			}
			if !r.OK() {
				return fmt.Errorf("pool %s: verify found %d problems (`unipool pool add` of a unikernel's image again rewrites its damaged or missing blobs; `unipool pool gc` removes blobs nothing references)", p.Dir(), len(r.Problems))
			}
			return nil
		},
	}
	verify.Flags().BoolVar(&verifyJSON, "json", false, "print JSON")
	return verify
}

func poolStatsCmd(pf *poolFlags) *cobra.Command {
	var statsJSON bool
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Blobs, bytes stored, bytes the descriptions reference, dedup ratio",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pf.open()
			if err != nil {
				return err
			}
			s, err := p.Stats()
			if err != nil {
				return err
			}
			if statsJSON {
				return poolJSON(cmd.OutOrStdout(), s)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "unikernels\t%d\n", s.Unikernels)
			fmt.Fprintf(w, "blobs\t%d\n", s.Blobs)
			fmt.Fprintf(w, "bytes stored\t%s\t(%d)\n", poolBytes(s.BytesStored), s.BytesStored)
			fmt.Fprintf(w, "bytes referenced\t%s\t(%d)\n", poolBytes(s.BytesReferenced), s.BytesReferenced)
			fmt.Fprintf(w, "dedup ratio\t%.2f\n", s.DedupRatio)
			fmt.Fprintf(w, "image bytes\t%s\t(%d; stored/images %s)\n", poolBytes(s.ImageBytes), s.ImageBytes, poolRatio(s.BytesStored, s.ImageBytes))
			fmt.Fprintf(w, "library uses\t%d\t(%s)\n", s.LibraryUses, poolBytes(s.LibraryBytesUsed))
			fmt.Fprintf(w, "library blobs\t%d\t(%s; uses per blob %s)\n", s.LibraryBlobs, poolBytes(s.LibraryBytesStored), poolRatio(int64(s.LibraryUses), int64(s.LibraryBlobs)))
			fmt.Fprintf(w, "app blobs\t%d\t(%s)\n", s.AppBlobs, poolBytes(s.AppBytes))
			fmt.Fprintf(w, "private blobs\t%s\n", poolBytes(s.PrivateBytes))
			if s.InitUses > 0 {
				fmt.Fprintf(w, "init blobs\t%d\t(%s; %d uses)\n", s.InitBlobs, poolBytes(s.InitBytes), s.InitUses)
			}
			if sn := s.Snapshots; sn.Unikernels > 0 {
				fmt.Fprintf(w, "snapshots\t%d\t(%d page uses, %d distinct pages, %s; uses per page %s)\n", sn.Unikernels, sn.PageUses, sn.PageBlobs,
					poolBytes(int64(sn.PageBlobs)*desc.SnapshotPageSize), poolRatio(int64(sn.PageUses), int64(sn.PageBlobs)))
				fmt.Fprintf(w, "snapshot page files\t%d\t(%d page packs; %d files mapped by the snapshots, %s per snapshot)\n", sn.Files, sn.Packs, sn.FileUses,
					poolRatio(int64(sn.FileUses), int64(sn.Unikernels)))
				fmt.Fprintf(w, "snapshot pages by sharers\t%s\n", sharedByLine(sn.SharedBy))
			}
			fmt.Fprintf(w, "unreferenced\t%d blobs\t(%s; `pool gc` removes them)\n", s.UnreferencedBlobs, poolBytes(s.UnreferencedBytes))
			return w.Flush()
		},
	}
	stats.Flags().BoolVar(&statsJSON, "json", false, "print JSON")
	return stats
}

func poolInitCmd(pf *poolFlags) *cobra.Command {
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create an empty pool (add creates one too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := pf.path()
			if err != nil {
				return err
			}
			p, err := pool.Init(d)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "pool", p.Dir())
			return nil
		},
	}
	return initCmd
}

func poolPushCmd(pf *poolFlags) *cobra.Command {
	var remote distribution.RemoteOptions
	var pushJSON bool
	push := &cobra.Command{
		Use:   "push REPOSITORY [NAME...]",
		Short: "Push unikernels (default: all) and the library map to an OCI registry, tagged by name",
		Long: "Push copies each unikernel's manifest and blobs to REPOSITORY (host[:port]/path),\n" +
			"tagged with its name, and the library map tagged " + pool.MapTag + " and " + pool.MapTagPrefix + "<digest>\n" +
			"(merged with the registry's maps; a library they place differently is refused by name;\n" +
			"pull merges every map tag, so concurrent pushers lose none of each other's libraries).\n" + poolRemoteHelp,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pf.open()
			if err != nil {
				return err
			}
			o, err := poolCredentials(cmd, remote)
			if err != nil {
				return err
			}
			res, err := distribution.Push(cmd.Context(), p, args[0], args[1:], o)
			if err != nil {
				return err
			}
			if pushJSON {
				return poolJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %d unikernels to %s (%d requests, %s sent)\n", len(res.Names), args[0], res.Transfer.Requests, poolBytes(res.Transfer.BytesOut))
			return nil
		},
	}
	poolRemoteFlags(push, &remote)
	push.Flags().BoolVar(&pushJSON, "json", false, "print the result as JSON")
	return push
}

func poolPullCmd(pf *poolFlags) *cobra.Command {
	var remote distribution.RemoteOptions
	var pullJSON bool
	pull := &cobra.Command{
		Use:   "pull REPOSITORY [NAME...]",
		Short: "Pull unikernels (default: every tag) from an OCI registry into the pool, fetching only the blobs it lacks",
		Long: "Pull reads and checks every manifest and description first, merges the registry's\n" +
			"library map into the pool's (a library the two place differently is refused, by name,\n" +
			"before any blob moves), downloads only the blobs the pool lacks, each verified against\n" +
			"its digest, then adds the unikernels all at once. An interrupted pull resumes: what it\n" +
			"verified waits in the pool's .pull folder. Pulls into one pool may run at once.\n" + poolRemoteHelp,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := pf.path()
			if err != nil {
				return err
			}
			o, err := poolCredentials(cmd, remote)
			if err != nil {
				return err
			}
			res, err := distribution.Pull(cmd.Context(), d, args[0], args[1:], o)
			if err != nil {
				return err
			}
			if pullJSON {
				return poolJSON(cmd.OutOrStdout(), res)
			}
			names := strings.Join(res.Names, ", ")
			if len(res.Names) > 5 {
				names = fmt.Sprintf("%d unikernels", len(res.Names))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pulled %s (%d new blobs, %s; downloaded %d blobs, %s; %d resumed)\n",
				names, res.NewBlobs, poolBytes(res.NewBytes), res.Fetched, poolBytes(res.FetchedBytes), res.Resumed)
			return nil
		},
	}
	poolRemoteFlags(pull, &remote)
	pull.Flags().BoolVar(&pullJSON, "json", false, "print the result as JSON")
	return pull
}

const poolRemoteHelp = `
TLS is checked against the system's CAs and --ca-file; --plain-http only when asked.
Credentials: --username NAME reads the password from stdin (never give it as an
argument); otherwise the docker config ($DOCKER_CONFIG/config.json, else
~/.docker/config.json: auths, credsStore, credHelpers).`

func poolRemoteFlags(cmd *cobra.Command, o *distribution.RemoteOptions) {
	cmd.Flags().BoolVar(&o.PlainHTTP, "plain-http", false, "use http, not https (a registry without TLS)")
	cmd.Flags().StringVar(&o.CAFile, "ca-file", "", "PEM file of CA certificates to trust besides the system's")
	cmd.Flags().StringVar(&o.Username, "username", "", "registry user; the password is read from stdin")
	cmd.Flags().IntVar(&o.Jobs, "jobs", 4, "blobs transferred at once")
}

// poolCredentials reads the password from stdin when --username is given:
// one line, or the whole input without its final newline.
func poolCredentials(cmd *cobra.Command, o distribution.RemoteOptions) (distribution.RemoteOptions, error) {
	if o.Username == "" {
		return o, nil
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(cmd.ErrOrStderr(), "password for %s: ", o.Username)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return o, fmt.Errorf("--username: reading the password: %w", err)
		}
		o.Password = string(pw)
		return o, nil
	}
	data, err := io.ReadAll(io.LimitReader(in, 64<<10))
	if err != nil {
		return o, fmt.Errorf("--username: reading the password from stdin: %w", err)
	}
	pw := strings.TrimRight(string(data), "\r\n")
	if i := strings.IndexAny(pw, "\r\n"); i >= 0 {
		pw = pw[:i]
	}
	if pw == "" {
		return o, fmt.Errorf("--username %s: no password on stdin (pipe it in: printf %%s \"$PASSWORD\" | unipool pool ... --username %s)", o.Username, o.Username)
	}
	o.Password = pw
	return o, nil
}

func poolJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func poolPrintDescription(out io.Writer, d *pool.Description) error {
	c := d.Config
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "name:\t%s\n", d.Name)
	fmt.Fprintf(w, "manifest:\t%s\n", d.Manifest)
	if c.Image != nil {
		fmt.Fprintf(w, "image:\t%s (%s)\n", c.Image.Digest, poolBytes(c.Image.Size))
	}
	fmt.Fprintf(w, "entry:\t%s+%#x (%#x)\n", c.Libraries[c.Entry.Lib].Name, c.Entry.Off, c.Libraries[c.Entry.Lib].Region.Start+c.Entry.Off)
	fmt.Fprintf(w, "memory:\t%s\n", poolBytes(int64(c.MemSize)))
	fmt.Fprintf(w, "cmdline:\t%q\n", c.Cmdline)
	if c.TLS != nil {
		fmt.Fprintf(w, "tls:\t%s+%#x, %#x file, %#x memory, align %d\n", c.Libraries[c.TLS.Image.Lib].Name, c.TLS.Image.Off, c.TLS.FileSize, c.TLS.MemSize, c.TLS.Align)
	}
	fmt.Fprintf(w, "private blob:\t%s (%s)\n", c.Private.Digest, poolBytes(c.Private.Size))
	if len(c.Arena) > 0 {
		var n uint64
		for _, a := range c.Arena {
			n += a.Size
		}
		fmt.Fprintf(w, "data arena:\t%d pages in %d runs, in the private blob, mapped copy-on-write\n", n/4096, len(c.Arena))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nlibraries:")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tVERSION\tREGION\tTRAMP\tSHARED\tPRIVATE\tRELOCS\tSLOTS\tSHARED BLOB")
	for _, l := range c.Libraries {
		name := l.Name
		if l.App {
			name += " (app)"
		}
		if l.NoASLR != "" {
			name += " (no aslr)"
		}
		r := l.Region
		fmt.Fprintf(w, "%s\t%s\t%#x-%#x\t%#x/%#x\t%#x/%#x\t%#x+%#x/%#x\t%d\t%d\t%s\n",
			name, l.Version, r.Start, r.End(),
			l.Tramp.Size, r.TrampSize,
			l.Shared.Size, r.SharedSize,
			l.Private.FileSize, l.Private.MemSize-l.Private.FileSize, r.PrivateSize,
			len(l.Relocs), len(l.Tramp.Slots), poolShort(l.Shared.Digest))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nblobs:")
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, b := range d.Blobs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", b.Role, b.Library, b.Digest, poolBytes(b.Size))
	}
	return w.Flush()
}

// poolShort abbreviates a digest for tables.
func poolShort(d string) string {
	if d == "" {
		return "-"
	}
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func poolBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func poolRatio(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", float64(a)/float64(b))
}

// poolParseSize reads a byte count: a number with an optional K, M, G
// suffix (powers of 1024; "KiB", "MB"... read the same).
func poolParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	upper := strings.ToUpper(t)
	for _, suf := range []struct {
		s string
		m uint64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(upper, suf.s) {
			mult, t = suf.m, strings.TrimSpace(t[:len(t)-len(suf.s)])
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a size (like 64M or 1G)", s)
	}
	if n > (1<<64-1)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
