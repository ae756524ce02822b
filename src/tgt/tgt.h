/* tgt.h: public interface of src/tgt (placeholder until the module lands). */
#ifndef DE_TGT_H
#define DE_TGT_H
#endif
