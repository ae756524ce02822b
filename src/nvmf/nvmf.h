/* nvmf.h: public interface of src/nvmf (placeholder until the module lands). */
#ifndef DE_NVMF_H
#define DE_NVMF_H
#endif
