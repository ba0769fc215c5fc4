/* ctype for the C locale, plus glibc's table accessors: objects compiled
 * against glibc's <ctype.h> (Debian's static archives) index the tables
 * __ctype_b_loc & co. return, from -128 to 255. */
#include <ctype.h>

int isdigit(int c) { return (unsigned)c - '0' < 10; }
int islower(int c) { return (unsigned)c - 'a' < 26; }
int isupper(int c) { return (unsigned)c - 'A' < 26; }
int isalpha(int c) { return islower(c) || isupper(c); }
int isalnum(int c) { return isalpha(c) || isdigit(c); }
int isblank(int c) { return c == ' ' || c == '\t'; }
int iscntrl(int c) { return (unsigned)c < 32 || c == 127; }
int isgraph(int c) { return (unsigned)c - 33 < 94; }
int isprint(int c) { return (unsigned)c - 32 < 95; }
int ispunct(int c) { return isgraph(c) && !isalnum(c); }
int isspace(int c) { return c == ' ' || (unsigned)c - '\t' < 5; }
int isxdigit(int c) { return isdigit(c) || (unsigned)(c | 32) - 'a' < 6; }
int isascii(int c) { return !(c & ~0x7f); }
int tolower(int c) { return isupper(c) ? c | 32 : c; }
int toupper(int c) { return islower(c) ? c & 0x5f : c; }

/* glibc's class bits as laid out on little-endian machines (_ISbit). */
enum {
	G_UPPER = 0x100, G_LOWER = 0x200, G_ALPHA = 0x400, G_DIGIT = 0x800,
	G_XDIGIT = 0x1000, G_SPACE = 0x2000, G_PRINT = 0x4000, G_GRAPH = 0x8000,
	G_BLANK = 0x1, G_CNTRL = 0x2, G_PUNCT = 0x4, G_ALNUM = 0x8,
};

static unsigned short ctype_b[384];
static int ctype_lower[384], ctype_upper[384];
static const unsigned short *ctype_b_ptr;
static const int *ctype_lower_ptr, *ctype_upper_ptr;

static void ctype_tables_init(void)
{
	for (int i = 0; i < 384; i++) {
		int c = i - 128;
		unsigned short m = 0;
		if (c >= 0) {
			m |= isupper(c) ? G_UPPER : 0;
			m |= islower(c) ? G_LOWER : 0;
			m |= isalpha(c) ? G_ALPHA : 0;
			m |= isdigit(c) ? G_DIGIT : 0;
			m |= isxdigit(c) ? G_XDIGIT : 0;
			m |= isspace(c) ? G_SPACE : 0;
			m |= isprint(c) ? G_PRINT : 0;
			m |= isgraph(c) ? G_GRAPH : 0;
			m |= isblank(c) ? G_BLANK : 0;
			m |= iscntrl(c) ? G_CNTRL : 0;
			m |= ispunct(c) ? G_PUNCT : 0;
			m |= isalnum(c) ? G_ALNUM : 0;
		}
		ctype_b[i] = m;
		ctype_lower[i] = c >= 0 ? tolower(c) : c;
		ctype_upper[i] = c >= 0 ? toupper(c) : c;
	}
	ctype_lower_ptr = ctype_lower + 128;
	ctype_upper_ptr = ctype_upper + 128;
	ctype_b_ptr = ctype_b + 128;
}

const unsigned short **__ctype_b_loc(void)
{
	if (!ctype_b_ptr)
		ctype_tables_init();
	return &ctype_b_ptr;
}

const int **__ctype_tolower_loc(void)
{
	if (!ctype_b_ptr)
		ctype_tables_init();
	return &ctype_lower_ptr;
}

const int **__ctype_toupper_loc(void)
{
	if (!ctype_b_ptr)
		ctype_tables_init();
	return &ctype_upper_ptr;
}
