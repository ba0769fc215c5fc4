#include <ukrand.h>
static unsigned long state = 88172645463325252ul;
unsigned long uk_rand(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }
