void bitswitch_kernels_placeholder(void);
