/* nvme.c: placeholder translation unit; replaced when the module lands. */
#include "nvme/nvme.h"
int nvme_module_placeholder(void);
int nvme_module_placeholder(void) { return 0; }
