/* rpc.c: placeholder translation unit; replaced when the module lands. */
#include "rpc/rpc.h"
int rpc_module_placeholder(void);
int rpc_module_placeholder(void) { return 0; }
