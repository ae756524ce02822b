/* agent.h: public interface of src/agent (placeholder until the module lands). */
#ifndef DE_AGENT_H
#define DE_AGENT_H
#endif
