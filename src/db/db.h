/* db.h: public interface of src/db (placeholder until the module lands). */
#ifndef DE_DB_H
#define DE_DB_H
#endif
