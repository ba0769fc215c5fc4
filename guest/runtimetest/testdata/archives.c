/* A guest app linked with Debian's static zlib, lz4, zstd and libyaml: it
 * round-trips data through each compressor and parses a YAML document, so
 * running it shows the guest libc gives those archives what they need.
 * The prototypes are declared here: the host's headers are not on the
 * guest's include path. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int compress2(unsigned char *dst, unsigned long *dlen, const unsigned char *src, unsigned long slen, int level);
int uncompress(unsigned char *dst, unsigned long *dlen, const unsigned char *src, unsigned long slen);
unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned len);
void *gzopen(const char *path, const char *mode);
int gzclose(void *f);
int LZ4_compressBound(int n);
int LZ4_compress_default(const char *src, char *dst, int n, int cap);
int LZ4_decompress_safe(const char *src, char *dst, int n, int cap);
size_t ZSTD_compressBound(size_t n);
size_t ZSTD_compress(void *dst, size_t cap, const void *src, size_t n, int level);
size_t ZSTD_decompress(void *dst, size_t cap, const void *src, size_t n);
unsigned ZSTD_isError(size_t code);
int yaml_parser_initialize(void *parser);
void yaml_parser_set_input_string(void *parser, const unsigned char *input, size_t size);
int yaml_parser_parse(void *parser, void *event);
void yaml_event_delete(void *event);
void yaml_parser_delete(void *parser);

#define N 20000

int main(void)
{
	static unsigned char in[N], out[N], packed[N + N / 2 + 1024];
	for (int i = 0; i < N; i++)
		in[i] = (unsigned char)("the quick brown fox jumps over the lazy dog "[i % 44] + (i / 1000));

	unsigned long plen = sizeof packed, olen = sizeof out;
	int ok = compress2(packed, &plen, in, N, 6) == 0 && uncompress(out, &olen, packed, plen) == 0 &&
		 olen == N && !memcmp(in, out, N) && crc32(0, in, N) == crc32(0, out, N);
	printf("zlib %s %lu", ok ? "ok" : "FAILED", plen);
	void *gz = gzopen("/no/such/file", "rb");
	printf(" gzopen %s", gz ? "opened?" : "none");
	if (gz)
		gzclose(gz);

	int n4 = LZ4_compress_default((const char *)in, (char *)packed, N, LZ4_compressBound(N));
	memset(out, 0, N);
	ok = n4 > 0 && LZ4_decompress_safe((const char *)packed, (char *)out, n4, N) == N && !memcmp(in, out, N);
	printf("; lz4 %s %d", ok ? "ok" : "FAILED", n4);

	size_t nz = ZSTD_compress(packed, ZSTD_compressBound(N), in, N, 3);
	memset(out, 0, N);
	ok = !ZSTD_isError(nz) && ZSTD_decompress(out, N, packed, nz) == N && !memcmp(in, out, N);
	printf("; zstd %s %zu", ok ? "ok" : "FAILED", nz);

	/* yaml_parser_t is 480 bytes and yaml_event_t 104 on x86-64. */
	static _Alignas(16) unsigned char parser[1024], event[256];
	const char *doc = "name: unipool\nlibs: [libc, zlib, lz4]\nnested: {a: 1, b: [2, 3]}\n";
	int events = 0, type = 0;
	ok = yaml_parser_initialize(parser);
	if (ok)
		yaml_parser_set_input_string(parser, (const unsigned char *)doc, strlen(doc));
	while (ok && type != 2 /* YAML_STREAM_END_EVENT */) {
		ok = yaml_parser_parse(parser, event);
		if (ok) {
			memcpy(&type, event, sizeof type);
			events++;
			yaml_event_delete(event);
		}
	}
	yaml_parser_delete(parser);
	printf("; yaml %s %d events\n", ok ? "ok" : "FAILED", events);
	return 0;
}
