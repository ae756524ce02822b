/* blob.c: placeholder translation unit; replaced when the module lands. */
#include "blob/blob.h"
int blob_module_placeholder(void);
int blob_module_placeholder(void) { return 0; }
