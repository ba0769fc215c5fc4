#include <stdio.h>
int main(int argc, char **argv) { (void)argc; (void)argv; puts("hello"); return 0; }
