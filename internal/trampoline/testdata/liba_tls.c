/* Library a: thread-local accesses to b's variable, built three ways
   (general-dynamic -fPIC, initial-exec -fpie, TLS descriptors): in a
   static image ld relaxes all of them, leaving stale relocations. */
extern __thread long b_tls;

#ifndef NAME
#define NAME a_tls
#endif

long NAME(long v) {
	b_tls += v;
	return b_tls;
}
