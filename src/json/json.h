/* json.h: public interface of src/json (placeholder until the module lands). */
#ifndef DE_JSON_H
#define DE_JSON_H
#endif
