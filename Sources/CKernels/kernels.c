#include "ckernels.h"
void bitswitch_kernels_placeholder(void) {}
