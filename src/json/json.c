/* json.c: placeholder translation unit; replaced when the module lands. */
#include "json/json.h"
int json_module_placeholder(void);
int json_module_placeholder(void) { return 0; }
