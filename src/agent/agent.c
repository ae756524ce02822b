/* agent.c: placeholder translation unit; replaced when the module lands. */
#include "agent/agent.h"
int agent_module_placeholder(void);
int agent_module_placeholder(void) { return 0; }
