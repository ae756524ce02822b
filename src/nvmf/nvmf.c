/* nvmf.c: placeholder translation unit; replaced when the module lands. */
#include "nvmf/nvmf.h"
int nvmf_module_placeholder(void);
int nvmf_module_placeholder(void) { return 0; }
