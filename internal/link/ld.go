package link

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// stagedName matches the work-directory names stage gives objects.
var stagedName = regexp.MustCompile(`\bo(\d{4})\.o\b`)

// realNames puts the objects' real paths back into ld's messages.
func (l *linker) realNames(msg string) string {
	return stagedName.ReplaceAllStringFunc(msg, func(m string) string {
		i, err := strconv.Atoi(m[1:5])
		if err != nil || i < 1 || i > len(l.objs) {
			return m
		}
		return l.objs[i-1].Path
	})
}

// ld runs the linker in the work directory. A failure returns ld's
// messages with real object names; success returns its warnings.
func (l *linker) ld(ctx context.Context, args []string) ([]string, error) {
	out, err := l.runLD(ctx, args)
	msg := strings.TrimSpace(l.realNames(out))
	if err != nil {
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("link %s: ld failed:\n%s%s", l.opt.Output, msg, l.scriptContext(msg))
	}
	var warns []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		// The aligned script parks ld's dynamic relocations outside every
		// segment on purpose (alignedScript) and removes them.
		if line != "" && !strings.Contains(line, "allocated section `.rela.dyn' not in segment") {
			warns = append(warns, line)
		}
	}
	return warns, nil
}

// runLD runs the linker in the work directory, in the C locale, and
// returns what it printed (stdout and stderr, object names as staged).
func (l *linker) runLD(ctx context.Context, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, l.opt.LD, args...)
	cmd.Dir = l.work
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// objcopy edits file in place.
func (l *linker) objcopy(ctx context.Context, file string, args ...string) error {
	cmd := exec.CommandContext(ctx, l.opt.Objcopy, append(args, file)...)
	cmd.Dir = l.work
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("link %s: objcopy %s: %v\n%s", l.opt.Output, strings.Join(args, " "), err, out)
	}
	return nil
}

// scriptLine matches ld's complaints about the generated script.
var scriptLine = regexp.MustCompile(`image\.ld:(\d+)`)

// scriptContext quotes the generated script's line ld complains about:
// such an error is unipool's bug, and the line is what its report needs.
func (l *linker) scriptContext(msg string) string {
	m := scriptLine.FindStringSubmatch(msg)
	if m == nil || l.script == "" {
		return ""
	}
	n, _ := strconv.Atoi(m[1])
	lines := strings.Split(l.script, "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return fmt.Sprintf("\n(generated script line %d: %s)", n, strings.TrimSpace(lines[n-1]))
}
