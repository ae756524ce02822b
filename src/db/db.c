/* db.c: placeholder translation unit; replaced when the module lands. */
#include "db/db.h"
int db_module_placeholder(void);
int db_module_placeholder(void) { return 0; }
