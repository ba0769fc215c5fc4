#include <ukmix.h>
#include <ukrand.h>
#ifndef MIX_ROUNDS
#define MIX_ROUNDS 3
#endif
static unsigned long helper(unsigned long x) { return x * 0x9e3779b97f4a7c15ul; }
unsigned long uk_mix(unsigned long x) { for (int i = 0; i < MIX_ROUNDS; i++) x = helper(x ^ uk_rand()); return x; }
