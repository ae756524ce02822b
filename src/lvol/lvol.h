/* lvol.h: public interface of src/lvol (placeholder until the module lands). */
#ifndef DE_LVOL_H
#define DE_LVOL_H
#endif
