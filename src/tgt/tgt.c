/* tgt.c: placeholder translation unit; replaced when the module lands. */
#include "tgt/tgt.h"
int tgt_module_placeholder(void);
int tgt_module_placeholder(void) { return 0; }
