/* rpc.h: public interface of src/rpc (placeholder until the module lands). */
#ifndef DE_RPC_H
#define DE_RPC_H
#endif
