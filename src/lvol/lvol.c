/* lvol.c: placeholder translation unit; replaced when the module lands. */
#include "lvol/lvol.h"
int lvol_module_placeholder(void);
int lvol_module_placeholder(void) { return 0; }
