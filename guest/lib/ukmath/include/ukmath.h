/* ukmath: the guest libm; the declarations are in <math.h>. */
#include <math.h>
