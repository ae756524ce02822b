/* bdev.c: placeholder translation unit; replaced when the module lands. */
#include "bdev/bdev.h"
int bdev_module_placeholder(void);
int bdev_module_placeholder(void) { return 0; }
