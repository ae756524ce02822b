/* blob.h: public interface of src/blob (placeholder until the module lands). */
#ifndef DE_BLOB_H
#define DE_BLOB_H
#endif
