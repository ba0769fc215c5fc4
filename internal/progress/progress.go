// Package progress shows how far a long step has got: a bar redrawn in
// place on a terminal (schollz/progressbar), and on anything else (a log
// file, a pipe, CI) a plain line at every tenth of the way and at most
// every Every in between, so logs stay short but show life.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Every is the longest a plain-line progress stays silent while it moves.
var Every = 10 * time.Second

// Bar is one step's progress. Its methods are safe for concurrent use.
type Bar struct {
	bar *progressbar.ProgressBar // on a terminal; nil otherwise

	mu       sync.Mutex
	w        io.Writer
	what     string
	total    int // -1: not known yet
	done     int
	tenth    int // last tenth a line was printed for
	last     time.Time
	started  time.Time
	finished bool
}

// New starts the progress of what out of total (-1 if not known yet) on w.
func New(w io.Writer, total int, what string) *Bar {
	if IsTerminal(w) {
		return &Bar{bar: progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))}
	}
	now := time.Now()
	b := &Bar{w: w, what: what, total: total, tenth: -1, started: now}
	b.mu.Lock()
	b.line(now)
	b.mu.Unlock()
	return b
}

// IsTerminal says whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// SetTotal changes the total, once it is known.
func (b *Bar) SetTotal(total int) {
	if b.bar != nil {
		b.bar.ChangeMax(total)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total = total
}

// Set records that done are done.
func (b *Bar) Set(done int) {
	if b.bar != nil {
		b.bar.Set(done)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	b.maybeLine()
}

// Add records n more done.
func (b *Bar) Add(n int) {
	if b.bar != nil {
		b.bar.Add(n)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.maybeLine()
}

// Finish ends the progress: the bar is completed, or a last line says how
// far it got and how long it took.
func (b *Bar) Finish() {
	if b.bar != nil {
		b.bar.Finish()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	fmt.Fprintf(b.w, "%s: %s, finished in %.1fs\n", b.what, b.count(), time.Since(b.started).Seconds())
}

// maybeLine prints a line when a new tenth is reached, or when Every has
// passed since the last one.
func (b *Bar) maybeLine() {
	if b.finished {
		return
	}
	now := time.Now()
	if b.total > 0 && b.done*10/b.total != b.tenth || now.Sub(b.last) >= Every {
		b.line(now)
	}
}

func (b *Bar) line(now time.Time) {
	if b.total > 0 {
		b.tenth = b.done * 10 / b.total
	}
	b.last = now
	fmt.Fprintf(b.w, "%s: %s\n", b.what, b.count())
}

func (b *Bar) count() string {
	if b.total < 0 {
		return fmt.Sprint(b.done)
	}
	return fmt.Sprintf("%d/%d", b.done, b.total)
}
