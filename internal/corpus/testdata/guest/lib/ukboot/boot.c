#include <uk/plat.h>
int main(int argc, char **argv);
void ukboot_entry(void) { ukplat_exit(main(0, 0)); }
