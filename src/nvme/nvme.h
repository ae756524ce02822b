/* nvme.h: public interface of src/nvme (placeholder until the module lands). */
#ifndef DE_NVME_H
#define DE_NVME_H
#endif
