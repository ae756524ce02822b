/*
 * db_backend.h: private to src/db. The vtable every backend implements and
 * the handle layout. db.c validates arguments (names, sizes, NQNs) once for
 * all backends and dispatches here; a backend only does storage.
 */
#ifndef DE_DB_BACKEND_H
#define DE_DB_BACKEND_H

#include "db/db.h"

#include <stdarg.h>

struct db_ops {
	const char *name;
	void (*close)(struct db *db);
	int (*schema_version)(struct db *db, int *out);
	void (*busy_timeout_set)(struct db *db, int ms);
	int (*change_counter)(struct db *db, uint64_t *out);
	int (*data_version)(struct db *db, uint64_t *out);

	int (*node_add)(struct db *db, const char *name, const char *rpc_socket,
			const char *nqn_prefix, int64_t *id_out);
	int (*node_get)(struct db *db, const char *name, int64_t id, struct db_node *out);
	int (*node_list)(struct db *db, struct db_node **out, size_t *count);
	int (*node_heartbeat)(struct db *db, int64_t node_id);

	int (*disk_add)(struct db *db, const struct db_disk *spec, int64_t *id_out);
	int (*disk_get)(struct db *db, const char *name, int64_t id, struct db_disk *out);
	int (*disk_list)(struct db *db, const char *node, struct db_disk **out, size_t *count);
	int (*disk_set_lvstore)(struct db *db, int64_t disk_id, const char *uuid,
				uint64_t cluster_size);
	int (*disk_observe)(struct db *db, int64_t disk_id, enum db_lvstore_state state,
			    uint64_t capacity, uint64_t free_bytes);

	int (*lvol_create)(struct db *db, const struct db_lvol_spec *spec, int64_t *id_out);
	int (*lvol_resize)(struct db *db, int64_t id, uint64_t new_size, bool allow_shrink);
	int (*lvol_delete)(struct db *db, int64_t id);
	int (*lvol_list)(struct db *db, const struct db_lvol_filter *f, int64_t only_id,
			 struct db_lvol **out, size_t *count);
	int (*lvol_set_uuid)(struct db *db, int64_t id, const char *uuid, uint64_t real_size);
	int (*lvol_set_real_size)(struct db *db, int64_t id, uint64_t real_size);
	int (*lvol_set_nqn)(struct db *db, int64_t id, const char *nqn);
	int (*lvol_set_state)(struct db *db, int64_t id, uint64_t expect_gen,
			      enum db_lvol_state state, const char *reason);
	int (*lvol_set_reason)(struct db *db, int64_t id, const char *reason);
	int (*lvol_zero_begin)(struct db *db, int64_t id, uint64_t expect_gen, uint64_t from,
			       uint64_t to);
	int (*lvol_zero_progress)(struct db *db, int64_t id, uint64_t done);
	int (*lvol_resize_done)(struct db *db, int64_t id, uint64_t expect_gen, uint64_t real_size);

	int (*snapshot_create)(struct db *db, int64_t lvol_id, int64_t *id_out);
	int (*snapshot_delete)(struct db *db, int64_t id);
	int (*snapshot_list)(struct db *db, const struct db_snapshot_filter *f, int64_t only_id,
			     struct db_snapshot **out, size_t *count);
	int (*snapshot_set_uuid)(struct db *db, int64_t id, const char *uuid);
	int (*snapshot_set_state)(struct db *db, int64_t id, uint64_t expect_gen,
				  enum db_snapshot_state state, const char *reason);
	int (*snapshot_set_reason)(struct db *db, int64_t id, const char *reason);

	int (*event_raise)(struct db *db, const char *node, const char *kind, const char *object,
			   const char *detail);
	int (*event_resolve)(struct db *db, const char *kind, const char *object);
	/* node NULL: every node's; *pruned set. */
	int (*event_prune)(struct db *db, const char *node, int64_t resolved_before, int *pruned);
	int (*event_list)(struct db *db, bool include_resolved, struct db_event **out,
			  size_t *count);
	/* Optional (NULL: db.c polls change_counter): block until the change
	 * counter differs from since, timeout_ms passes or wake_fd is readable. */
	int (*change_wait)(struct db *db, uint64_t since, int timeout_ms, int wake_fd,
			   uint64_t *now);
	/* Optional (NULL: no filtering): see db_change_filter(). */
	void (*change_filter)(struct db *db, const char *node, unsigned kinds);
	/* Optional (NULL: db.c polls data_version): the same for data_version. */
	int (*data_wait)(struct db *db, uint64_t since, int timeout_ms, uint64_t *now);
};

struct db {
	const struct db_ops *ops;
	void *impl;                 /* backend state */
	char errmsg[512];
};

/* Sets db->errmsg (printf-style) and returns err (a -errno). */
int db_fail(struct db *db, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void db_err_clear(struct db *db);
/* Bounded copy that always terminates (truncates). */
void db_strlcpy(char *dst, const char *src, size_t size);
/* "a b c" -> heap array of heap strings (mem_*). 0 or -ENOMEM. */
int db_split_words(const char *s, char ***out, size_t *count);
void db_free_words(char **w, size_t count);

/* Rules both backends keep (db.c), so they are written once. */
/* "ip:port [ip6]:port ..." as stored in disks.listen, and back (junk skipped). */
void db_listen_format(const struct db_disk *d, char *buf, size_t len);
void db_listen_parse_all(const char *s, struct db_disk *d);
/* Host NQNs joined by spaces (heap, mem_free). 0 or -ENOMEM. */
int db_join_hosts(struct db *db, const char *const *hosts, size_t n, char **out);
/* Bytes a thick lvol of `size` takes on clusters of `cluster` bytes. */
uint64_t db_round_cluster(uint64_t size, uint64_t cluster);
/* Thick bytes one lvol row still has to take from disk d's observed free bytes:
 * its size in clusters minus what it holds (real_size), all of it when the row
 * was written after the observation (unless RESIZING: its old size is in). */
uint64_t db_pending_bytes(const struct db_disk *d, uint64_t size, uint64_t real_size,
			  bool resizing, bool written_after_observation);
/* The thick free-space check: 0 when the free bytes are unknown or `need`
 * (rounded to clusters) fits in what available() gives, else -ENOSPC with the
 * numbers in the message. */
int db_space_check(struct db *db, const struct db_disk *d, uint64_t need,
		   int (*available)(struct db *db, const struct db_disk *d, uint64_t *avail,
				    uint64_t *pending));
/* Resize of lvol l (read in the write transaction) to new_size: 1 nothing to
 * do (same size), 0 go on, -ENOENT (deleted), -EBUSY (not READY), -EINVAL
 * (shrink without allow_shrink). */
int db_resize_check(struct db *db, const struct db_lvol *l, uint64_t new_size, bool allow_shrink);
/* Thick bytes a grow of l to new_size takes on disk d (0: none). */
uint64_t db_resize_growth(const struct db_lvol *l, const struct db_disk *d, uint64_t new_size);
/* Delete of lvol l: 1 already DELETING, 0 go on, -ENOENT already DELETED. */
int db_delete_check(struct db *db, const struct db_lvol *l);
/* Placement found nothing: -ENOENT (no candidate disk) or -ENOSPC, with the message. */
int db_place_none(struct db *db, const char *node, size_t candidates, uint64_t size);

/* Backends. */
int db_sqlite_open(const char *path, bool create, struct db **out, char *err, size_t errlen);
/* pg.c, built when libpq is found (DE_HAVE_LIBPQ). */
int db_pg_open(const char *url, bool create, struct db **out, char *err, size_t errlen);

#endif /* DE_DB_BACKEND_H */
