/* Pattern -> AST (recursive descent) -> program for a small VM. Two
 * engines run the program, chosen at build time (REGEX_ENGINE_PIKEVM):
 *  - a bit-state backtracker: depth first in priority order, remembering
 *    each (pc, position) it tried, so it is linear and finds the same
 *    leftmost-first match as a Perl-style backtracker;
 *  - a Pike VM (Thompson NFA simulation with threads kept in priority
 *    order), which needs no memory proportional to the text.
 * Both give identical results. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ukregex.h>

#define MAX_REPEAT 1000
#define MAX_PROG 20000

enum node_kind { N_EMPTY, N_LIT, N_ANY, N_CLASS, N_BOL, N_EOL, N_CAT, N_ALT, N_REPEAT };

struct node {
	enum node_kind kind;
	int a, b;      /* CAT/ALT children; REPEAT child in a */
	int min, max;  /* REPEAT: max -1 = unbounded */
	int lazy;
	int cls;       /* CLASS index; LIT byte */
};

enum op { OP_CHAR, OP_ANY, OP_CLASS, OP_SPLIT, OP_JMP, OP_BOL, OP_EOL, OP_MATCH };

struct inst {
	uint8_t op;
	uint8_t c;
	int x, y; /* SPLIT: x preferred; JMP: x; CLASS: x = class index */
};

struct regex {
	struct inst *prog;
	int nprog;
	uint8_t (*classes)[32];
	int nclasses;
};

struct pstate {
	const char *p;
	int flags;
	const char *err;
	struct node *nodes;
	int nnodes, capnodes;
	uint8_t (*classes)[32];
	int nclasses, capclasses;
	int depth;
};

static int new_node(struct pstate *ps, enum node_kind k)
{
	if (ps->nnodes == ps->capnodes) {
		int cap = ps->capnodes ? ps->capnodes * 2 : 32;
		struct node *n = realloc(ps->nodes, (size_t)cap * sizeof(*n));

		if (!n) {
			ps->err = "out of memory";
			return -1;
		}
		ps->nodes = n;
		ps->capnodes = cap;
	}
	memset(&ps->nodes[ps->nnodes], 0, sizeof(struct node));
	ps->nodes[ps->nnodes].kind = k;
	return ps->nnodes++;
}

static int new_class(struct pstate *ps)
{
	if (ps->nclasses == ps->capclasses) {
		int cap = ps->capclasses ? ps->capclasses * 2 : 8;
		uint8_t(*c)[32] = realloc(ps->classes, (size_t)cap * 32);

		if (!c) {
			ps->err = "out of memory";
			return -1;
		}
		ps->classes = c;
		ps->capclasses = cap;
	}
	memset(ps->classes[ps->nclasses], 0, 32);
	return ps->nclasses++;
}

static void cls_set(uint8_t *cls, int c)
{
	cls[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static int cls_has(const uint8_t *cls, int c)
{
	return cls[c >> 3] >> (c & 7) & 1;
}

static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }

static void cls_add_range(uint8_t *cls, int lo, int hi, int icase)
{
	int c;

	for (c = lo; c <= hi; c++) {
		cls_set(cls, c);
		if (icase && is_lower(c))
			cls_set(cls, c - 32);
		if (icase && is_upper(c))
			cls_set(cls, c + 32);
	}
}

/* perl_class adds \d \w \s (or their negations) to cls. */
static int perl_class(uint8_t *cls, char e)
{
	uint8_t tmp[32];
	int i, neg = 0;

	memset(tmp, 0, sizeof(tmp));
	switch (e) {
	case 'D': neg = 1; /* fall through */
	case 'd': cls_add_range(tmp, '0', '9', 0); break;
	case 'W': neg = 1; /* fall through */
	case 'w':
		cls_add_range(tmp, '0', '9', 0);
		cls_add_range(tmp, 'A', 'Z', 0);
		cls_add_range(tmp, 'a', 'z', 0);
		cls_set(tmp, '_');
		break;
	case 'S': neg = 1; /* fall through */
	case 's':
		cls_set(tmp, ' ');
		cls_set(tmp, '\t');
		cls_set(tmp, '\n');
		cls_set(tmp, '\r');
		cls_set(tmp, '\f');
		break;
	default:
		return 0;
	}
	for (i = 0; i < 32; i++)
		cls[i] |= neg ? (uint8_t)~tmp[i] : tmp[i];
	return 1;
}

/* escape_char maps a single-character escape to its byte, -1 if unknown. */
static int escape_char(char e)
{
	switch (e) {
	case 'n': return '\n';
	case 't': return '\t';
	case 'r': return '\r';
	case 'f': return '\f';
	case 'v': return '\v';
	case 'a': return '\a';
	}
	if ((e >= '!' && e <= '/') || (e >= ':' && e <= '@') ||
	    (e >= '[' && e <= '`') || (e >= '{' && e <= '~'))
		return (unsigned char)e;
	return -1;
}

static int parse_alt(struct pstate *ps);

static int parse_class(struct pstate *ps)
{
	int idx = new_class(ps), neg = 0, first = 1, i;
	int icase = ps->flags & REGEX_ICASE;
	uint8_t *cls;

	if (idx < 0)
		return -1;
	ps->p++; /* '[' */
	if (*ps->p == '^') {
		neg = 1;
		ps->p++;
	}
	for (;;) {
		int lo, hi;

		cls = ps->classes[idx]; /* new_class may not move it, but be safe */
		if (*ps->p == '\0') {
			ps->err = "missing ]";
			return -1;
		}
		if (*ps->p == ']' && !first)
			break;
		first = 0;
		if (*ps->p == '\\') {
			if (perl_class(cls, ps->p[1])) {
				ps->p += 2;
				continue;
			}
			lo = escape_char(ps->p[1]);
			if (lo < 0) {
				ps->err = "bad escape in class";
				return -1;
			}
			ps->p += 2;
		} else {
			lo = (unsigned char)*ps->p++;
		}
		hi = lo;
		if (ps->p[0] == '-' && ps->p[1] != ']' && ps->p[1] != '\0') {
			ps->p++;
			if (*ps->p == '\\') {
				hi = escape_char(ps->p[1]);
				if (hi < 0) {
					ps->err = "bad escape in class range";
					return -1;
				}
				ps->p += 2;
			} else {
				hi = (unsigned char)*ps->p++;
			}
			if (hi < lo) {
				ps->err = "bad class range";
				return -1;
			}
		}
		cls_add_range(cls, lo, hi, icase);
	}
	ps->p++; /* ']' */
	cls = ps->classes[idx];
	if (neg)
		for (i = 0; i < 32; i++)
			cls[i] = (uint8_t)~cls[i];
	i = new_node(ps, N_CLASS);
	if (i >= 0)
		ps->nodes[i].cls = idx;
	return i;
}

static int lit_node(struct pstate *ps, int c)
{
	int n;

	if ((ps->flags & REGEX_ICASE) && (is_lower(c) || is_upper(c))) {
		int idx = new_class(ps);

		if (idx < 0)
			return -1;
		cls_add_range(ps->classes[idx], c, c, 1);
		n = new_node(ps, N_CLASS);
		if (n >= 0)
			ps->nodes[n].cls = idx;
		return n;
	}
	n = new_node(ps, N_LIT);
	if (n >= 0)
		ps->nodes[n].cls = c;
	return n;
}

static int parse_atom(struct pstate *ps)
{
	char c = *ps->p;
	int n;

	switch (c) {
	case '(':
		ps->p++;
		if (ps->p[0] == '?' && ps->p[1] == ':')
			ps->p += 2;
		else if (ps->p[0] == '?') {
			ps->err = "unsupported group flag";
			return -1;
		}
		if (++ps->depth > 1000) {
			ps->err = "nesting too deep";
			return -1;
		}
		n = parse_alt(ps);
		ps->depth--;
		if (n < 0)
			return -1;
		if (*ps->p != ')') {
			ps->err = "missing )";
			return -1;
		}
		ps->p++;
		return n;
	case '[':
		return parse_class(ps);
	case '.': {
		ps->p++;
		return new_node(ps, N_ANY);
	}
	case '^':
		ps->p++;
		return new_node(ps, N_BOL);
	case '$':
		ps->p++;
		return new_node(ps, N_EOL);
	case '\\': {
		int idx, e;

		if (ps->p[1] == '\0') {
			ps->err = "trailing backslash";
			return -1;
		}
		idx = new_class(ps);
		if (idx < 0)
			return -1;
		if (perl_class(ps->classes[idx], ps->p[1])) {
			ps->p += 2;
			n = new_node(ps, N_CLASS);
			if (n >= 0)
				ps->nodes[n].cls = idx;
			return n;
		}
		ps->nclasses--; /* not needed after all */
		e = escape_char(ps->p[1]);
		if (e < 0) {
			ps->err = "unknown escape";
			return -1;
		}
		ps->p += 2;
		return lit_node(ps, e);
	}
	case '*':
	case '+':
	case '?':
	case '{':
		if (c == '{' && !(ps->p[1] >= '0' && ps->p[1] <= '9')) {
			ps->p++;
			return lit_node(ps, '{');
		}
		ps->err = "missing argument to repetition operator";
		return -1;
	default:
		ps->p++;
		return lit_node(ps, (unsigned char)c);
	}
}

/* parse_count reads "{n}", "{n,}" or "{n,m}"; returns 0, or 1 if the brace
 * does not start a count (then it is a literal), or -1 on error. */
static int parse_count(struct pstate *ps, int *min, int *max)
{
	const char *q = ps->p + 1;
	long lo = 0, hi;

	if (!(*q >= '0' && *q <= '9'))
		return 1;
	/* as in Go, a number with a leading zero makes the brace a literal */
	if (q[0] == '0' && q[1] >= '0' && q[1] <= '9')
		return 1;
	while (*q >= '0' && *q <= '9') {
		lo = lo * 10 + (*q++ - '0');
		if (lo > MAX_REPEAT)
			goto toobig;
	}
	hi = lo;
	if (*q == ',') {
		q++;
		if (*q == '}') {
			hi = -1;
		} else {
			if (!(*q >= '0' && *q <= '9') ||
			    (q[0] == '0' && q[1] >= '0' && q[1] <= '9'))
				return 1;
			hi = 0;
			while (*q >= '0' && *q <= '9') {
				hi = hi * 10 + (*q++ - '0');
				if (hi > MAX_REPEAT)
					goto toobig;
			}
		}
	}
	if (*q != '}')
		return 1;
	if (hi >= 0 && hi < lo) {
		ps->err = "invalid repeat count";
		return -1;
	}
	ps->p = q + 1;
	*min = (int)lo;
	*max = (int)hi;
	return 0;
toobig:
	ps->err = "invalid repeat count";
	return -1;
}

static int parse_repeat(struct pstate *ps)
{
	int n = parse_atom(ps);

	while (n >= 0) {
		int min, max, r;
		char c = *ps->p;

		if (c == '*') {
			min = 0;
			max = -1;
			ps->p++;
		} else if (c == '+') {
			min = 1;
			max = -1;
			ps->p++;
		} else if (c == '?') {
			min = 0;
			max = 1;
			ps->p++;
		} else if (c == '{') {
			r = parse_count(ps, &min, &max);
			if (r < 0)
				return -1;
			if (r > 0)
				break;
		} else {
			break;
		}
		r = new_node(ps, N_REPEAT);
		if (r < 0)
			return -1;
		ps->nodes[r].a = n;
		ps->nodes[r].min = min;
		ps->nodes[r].max = max;
		if (*ps->p == '?') {
			ps->nodes[r].lazy = 1;
			ps->p++;
		}
		n = r;
		if (*ps->p == '*' || *ps->p == '+' || *ps->p == '?') {
			ps->err = "bad repetition operator";
			return -1;
		}
	}
	return n;
}

static int parse_cat(struct pstate *ps)
{
	int left = -1;

	while (*ps->p && *ps->p != '|' && *ps->p != ')') {
		int r = parse_repeat(ps), c;

		if (r < 0)
			return -1;
		if (left < 0) {
			left = r;
			continue;
		}
		c = new_node(ps, N_CAT);
		if (c < 0)
			return -1;
		ps->nodes[c].a = left;
		ps->nodes[c].b = r;
		left = c;
	}
	return left < 0 ? new_node(ps, N_EMPTY) : left;
}

static int parse_alt(struct pstate *ps)
{
	int left = parse_cat(ps);

	while (left >= 0 && *ps->p == '|') {
		int right, a;

		ps->p++;
		right = parse_cat(ps);
		if (right < 0)
			return -1;
		a = new_node(ps, N_ALT);
		if (a < 0)
			return -1;
		ps->nodes[a].a = left;
		ps->nodes[a].b = right;
		left = a;
	}
	return left;
}

/* ---- compiling ---- */

struct cstate {
	const struct node *nodes;
	struct inst *prog;
	int n, cap;
	const char *err;
};

static int emit(struct cstate *cs, uint8_t op, int c, int x, int y)
{
	if (cs->err)
		return -1;
	if (cs->n >= MAX_PROG) {
		cs->err = "expression too large";
		return -1;
	}
	if (cs->n == cs->cap) {
		int cap = cs->cap ? cs->cap * 2 : 64;
		struct inst *p = realloc(cs->prog, (size_t)cap * sizeof(*p));

		if (!p) {
			cs->err = "out of memory";
			return -1;
		}
		cs->prog = p;
		cs->cap = cap;
	}
	cs->prog[cs->n].op = op;
	cs->prog[cs->n].c = (uint8_t)c;
	cs->prog[cs->n].x = x;
	cs->prog[cs->n].y = y;
	return cs->n++;
}

static void compile_node(struct cstate *cs, int i, int depth);

static int nullable(const struct node *nodes, int i)
{
	const struct node *nd = &nodes[i];

	switch (nd->kind) {
	case N_EMPTY:
	case N_BOL:
	case N_EOL:
		return 1;
	case N_CAT:
		return nullable(nodes, nd->a) && nullable(nodes, nd->b);
	case N_ALT:
		return nullable(nodes, nd->a) || nullable(nodes, nd->b);
	case N_REPEAT:
		return nd->min == 0 || nullable(nodes, nd->a);
	default:
		return 0;
	}
}

/* set_split points a SPLIT at body (taken first unless lazy) and out. */
static void set_split(struct cstate *cs, int split, int body, int out, int lazy)
{
	cs->prog[split].x = lazy ? out : body;
	cs->prog[split].y = lazy ? body : out;
}

/* compile_plus: L: x; SPLIT L, out. Looping back into the same code (not
 * "x x*") keeps Go's priority order when x can match empty. */
static void compile_plus(struct cstate *cs, const struct node *nd, int depth)
{
	int start = cs->n, split;

	compile_node(cs, nd->a, depth + 1);
	split = emit(cs, OP_SPLIT, 0, 0, 0);
	if (!cs->err)
		set_split(cs, split, start, cs->n, nd->lazy);
}

/* compile_star: L: SPLIT body, out; body: x; JMP L. When x can match
 * empty, x* is compiled as (x+)? instead, as Go does (golang.org/issue/46123),
 * so that both give the same leftmost-first match. */
static void compile_star(struct cstate *cs, const struct node *nd, int depth)
{
	int split = emit(cs, OP_SPLIT, 0, 0, 0);

	if (nullable(cs->nodes, nd->a)) {
		compile_plus(cs, nd, depth);
	} else {
		compile_node(cs, nd->a, depth + 1);
		emit(cs, OP_JMP, 0, split, 0);
	}
	if (!cs->err)
		set_split(cs, split, split + 1, cs->n, nd->lazy);
}

static void compile_node(struct cstate *cs, int i, int depth)
{
	const struct node *nd = &cs->nodes[i];
	int k, split, jmp;
	int *holes;

	if (cs->err)
		return;
	if (depth > 2000) {
		cs->err = "expression too deep";
		return;
	}
	switch (nd->kind) {
	case N_EMPTY:
		break;
	case N_LIT:
		emit(cs, OP_CHAR, nd->cls, 0, 0);
		break;
	case N_ANY:
		emit(cs, OP_ANY, 0, 0, 0);
		break;
	case N_CLASS:
		emit(cs, OP_CLASS, 0, nd->cls, 0);
		break;
	case N_BOL:
		emit(cs, OP_BOL, 0, 0, 0);
		break;
	case N_EOL:
		emit(cs, OP_EOL, 0, 0, 0);
		break;
	case N_CAT:
		compile_node(cs, nd->a, depth + 1);
		compile_node(cs, nd->b, depth + 1);
		break;
	case N_ALT:
		split = emit(cs, OP_SPLIT, 0, 0, 0);
		compile_node(cs, nd->a, depth + 1);
		jmp = emit(cs, OP_JMP, 0, 0, 0);
		if (cs->err)
			return;
		cs->prog[split].x = split + 1;
		cs->prog[split].y = cs->n;
		compile_node(cs, nd->b, depth + 1);
		if (cs->err)
			return;
		cs->prog[jmp].x = cs->n;
		break;
	case N_REPEAT:
		if (nd->max < 0) {
			/* x{n,} = n-1 copies of x, then x+ (x* when n is 0) */
			for (k = 0; k + 1 < nd->min; k++)
				compile_node(cs, nd->a, depth + 1);
			if (nd->min == 0)
				compile_star(cs, nd, depth);
			else
				compile_plus(cs, nd, depth);
			break;
		}
		for (k = 0; k < nd->min; k++)
			compile_node(cs, nd->a, depth + 1);
		/* (x(x(x)?)?)? for the optional copies: each split may leave
		 * to the common end */
		if (nd->max == nd->min)
			break;
		holes = malloc((size_t)(nd->max - nd->min) * sizeof(int));
		if (!holes) {
			cs->err = "out of memory";
			return;
		}
		for (k = 0; k < nd->max - nd->min; k++) {
			holes[k] = emit(cs, OP_SPLIT, 0, 0, 0);
			compile_node(cs, nd->a, depth + 1);
		}
		if (!cs->err)
			for (k = 0; k < nd->max - nd->min; k++) {
				struct inst *s = &cs->prog[holes[k]];

				if (nd->lazy) {
					s->x = cs->n;
					s->y = holes[k] + 1;
				} else {
					s->x = holes[k] + 1;
					s->y = cs->n;
				}
			}
		free(holes);
		break;
	}
}

struct regex *regex_compile(const char *pattern, int flags, const char **err)
{
	struct pstate ps;
	struct cstate cs;
	struct regex *re;
	int root;

	memset(&ps, 0, sizeof(ps));
	ps.p = pattern;
	ps.flags = flags;
	root = parse_alt(&ps);
	if (root >= 0 && *ps.p == ')') {
		ps.err = "unexpected )";
		root = -1;
	}
	if (root < 0) {
		if (err)
			*err = ps.err ? ps.err : "out of memory";
		free(ps.nodes);
		free(ps.classes);
		return NULL;
	}
	memset(&cs, 0, sizeof(cs));
	cs.nodes = ps.nodes;
	compile_node(&cs, root, 0);
	emit(&cs, OP_MATCH, 0, 0, 0);
	free(ps.nodes);
	re = cs.err ? NULL : malloc(sizeof(*re));
	if (!re) {
		if (err)
			*err = cs.err ? cs.err : "out of memory";
		free(cs.prog);
		free(ps.classes);
		return NULL;
	}
	re->prog = cs.prog;
	re->nprog = cs.n;
	re->classes = ps.classes;
	re->nclasses = ps.nclasses;
	return re;
}

void regex_free(struct regex *re)
{
	if (!re)
		return;
	free(re->prog);
	free(re->classes);
	free(re);
}

/* consumes reports whether instruction in consumes byte c. */
static int consumes(const struct regex *re, const struct inst *in, unsigned char c)
{
	switch (in->op) {
	case OP_CHAR:
		return in->c == c;
	case OP_ANY:
		return c != '\n';
	case OP_CLASS:
		return cls_has(re->classes[in->x], c);
	}
	return 0;
}

#if defined(REGEX_ENGINE_PIKEVM) && REGEX_ENGINE_PIKEVM
struct thread {
	int pc;
	size_t start;
};

struct tlist {
	struct thread *t;
	int n;
};

/* addthread follows JMP/SPLIT/assertions from pc in priority order and
 * appends the consuming (or MATCH) instructions it reaches to l; mark
 * makes each pc appear once per list. */
static void addthread(const struct regex *re, struct tlist *l, size_t *mark,
		      int *stack, int pc, size_t start, size_t pos, size_t n)
{
	int sp = 0;

	stack[sp++] = pc;
	while (sp > 0) {
		const struct inst *in;

		pc = stack[--sp];
		if (mark[pc] == pos + 1)
			continue;
		mark[pc] = pos + 1;
		in = &re->prog[pc];
		switch (in->op) {
		case OP_JMP:
			stack[sp++] = in->x;
			break;
		case OP_SPLIT:
			stack[sp++] = in->y; /* popped after x's subtree */
			stack[sp++] = in->x;
			break;
		case OP_BOL:
			if (pos == 0)
				stack[sp++] = pc + 1;
			break;
		case OP_EOL:
			if (pos == n)
				stack[sp++] = pc + 1;
			break;
		default:
			l->t[l->n].pc = pc;
			l->t[l->n].start = start;
			l->n++;
		}
	}
}

static int run(const struct regex *re, const char *s, size_t n, size_t from,
	       int anchored, size_t *ms, size_t *me)
{
	size_t np = (size_t)re->nprog, pos;
	struct thread *buf = malloc(2 * np * sizeof(*buf));
	size_t *mark = malloc(np * sizeof(*mark));
	int *stack = malloc((2 * np + 1) * sizeof(*stack));
	struct tlist clist, nlist, tmp;
	int matched = 0, i;

	if (!buf || !mark || !stack) {
		free(buf);
		free(mark);
		free(stack);
		return -1;
	}
	/* marks hold pos+1 of the list they were set for; from may be > 0 */
	for (i = 0; i < re->nprog; i++)
		mark[i] = 0;
	clist.t = buf;
	clist.n = 0;
	nlist.t = buf + np;
	nlist.n = 0;
	for (pos = from;; pos++) {
		if (!matched && (!anchored || pos == from))
			addthread(re, &clist, mark, stack, 0, pos, pos, n);
		if (clist.n == 0)
			break;
		nlist.n = 0;
		for (i = 0; i < clist.n; i++) {
			const struct inst *in = &re->prog[clist.t[i].pc];

			if (in->op == OP_MATCH) {
				if (!anchored || pos == n) {
					matched = 1;
					*ms = clist.t[i].start;
					*me = pos;
					break; /* lower-priority threads lose */
				}
				continue;
			}
			if (pos < n && consumes(re, in, (unsigned char)s[pos]))
				addthread(re, &nlist, mark, stack, clist.t[i].pc + 1,
					  clist.t[i].start, pos + 1, n);
		}
		tmp = clist;
		clist = nlist;
		nlist = tmp;
		if (pos >= n)
			break;
	}
	free(buf);
	free(mark);
	free(stack);
	return matched;
}

const char *regex_engine(void)
{
	return "pikevm";
}
#else
struct job {
	int pc;
	size_t pos;
};

static int run(const struct regex *re, const char *s, size_t n, size_t from,
	       int anchored, size_t *ms, size_t *me)
{
	size_t np = (size_t)re->nprog, span = n - from + 1;
	size_t nbits = np * span, start;
	uint8_t *visited = calloc((nbits + 7) / 8, 1);
	size_t cap = 64, sp;
	struct job *stack = malloc(cap * sizeof(*stack));
	int found = 0;

	if (!visited || !stack) {
		free(visited);
		free(stack);
		return -1;
	}
	/* A (pc, pos) that failed once fails again from any start, so the
	 * visited set is kept across start positions. */
	for (start = from; start <= n && !found; start++) {
		if (anchored && start > from)
			break;
		sp = 0;
		stack[sp].pc = 0;
		stack[sp].pos = start;
		sp++;
		while (sp > 0 && !found) {
			int pc;
			size_t pos;

			sp--;
			pc = stack[sp].pc;
			pos = stack[sp].pos;
			for (;;) {
				const struct inst *in = &re->prog[pc];
				size_t bit = (size_t)pc * span + (pos - from);

				if (visited[bit >> 3] >> (bit & 7) & 1)
					break;
				visited[bit >> 3] |= (uint8_t)(1u << (bit & 7));
				if (in->op == OP_MATCH) {
					if (anchored && pos != n)
						break;
					found = 1;
					*ms = start;
					*me = pos;
					break;
				}
				if (in->op == OP_JMP) {
					pc = in->x;
					continue;
				}
				if (in->op == OP_SPLIT) {
					if (sp == cap) {
						struct job *ns = realloc(stack, 2 * cap * sizeof(*ns));

						if (!ns) {
							free(visited);
							free(stack);
							return -1;
						}
						stack = ns;
						cap *= 2;
					}
					stack[sp].pc = in->y;
					stack[sp].pos = pos;
					sp++;
					pc = in->x;
					continue;
				}
				if (in->op == OP_BOL) {
					if (pos != 0)
						break;
					pc++;
					continue;
				}
				if (in->op == OP_EOL) {
					if (pos != n)
						break;
					pc++;
					continue;
				}
				if (pos < n && consumes(re, in, (unsigned char)s[pos])) {
					pc++;
					pos++;
					continue;
				}
				break;
			}
		}
	}
	free(visited);
	free(stack);
	return found;
}

const char *regex_engine(void)
{
	return "backtrack";
}
#endif

int regex_search(const struct regex *re, const char *s, size_t n, size_t from,
		 size_t *ms, size_t *me)
{
	if (from > n)
		return 0;
	return run(re, s, n, from, 0, ms, me);
}

int regex_fullmatch(const struct regex *re, const char *s, size_t n)
{
	size_t ms, me;

	return run(re, s, n, 0, 1, &ms, &me) == 1;
}

long regex_find_all(const struct regex *re, const char *s, size_t n,
		    void (*fn)(void *arg, size_t ms, size_t me), void *arg)
{
	size_t pos = 0, ms, me;
	long prev_end = -1, count = 0;

	while (pos <= n) {
		int r = run(re, s, n, pos, 0, &ms, &me);
		int accept = 1;

		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (me == pos) {
			/* an empty match: step past it, and drop it if it
			 * abuts the previous match (Go's FindAll rule) */
			if ((long)ms == prev_end)
				accept = 0;
			pos++;
		} else {
			pos = me;
		}
		prev_end = (long)me;
		if (accept) {
			count++;
			if (fn)
				fn(arg, ms, me);
		}
	}
	return count;
}

struct repl_state {
	const char *s;
	const char *repl;
	size_t repllen, last, len, cap;
	char *out;
	int oom;
};

static void repl_put(struct repl_state *st, const char *p, size_t n)
{
	if (st->oom)
		return;
	if (st->len + n + 1 > st->cap) {
		size_t cap = st->cap ? st->cap : 64;
		char *o;

		while (cap < st->len + n + 1)
			cap *= 2;
		o = realloc(st->out, cap);
		if (!o) {
			st->oom = 1;
			return;
		}
		st->out = o;
		st->cap = cap;
	}
	memcpy(st->out + st->len, p, n);
	st->len += n;
	st->out[st->len] = '\0';
}

static void repl_one(void *arg, size_t ms, size_t me)
{
	struct repl_state *st = arg;

	repl_put(st, st->s + st->last, ms - st->last);
	repl_put(st, st->repl, st->repllen);
	st->last = me;
}

char *regex_replace(const struct regex *re, const char *s, size_t n,
		    const char *repl, size_t *outlen)
{
	struct repl_state st;

	memset(&st, 0, sizeof(st));
	st.s = s;
	st.repl = repl;
	st.repllen = strlen(repl);
	if (regex_find_all(re, s, n, repl_one, &st) < 0)
		st.oom = 1;
	repl_put(&st, s + st.last, n - st.last);
	if (st.oom) {
		free(st.out);
		return NULL;
	}
	if (outlen)
		*outlen = st.len;
	return st.out;
}
