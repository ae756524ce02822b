/*
 * db_checks.c: checks shared by the SQLite and PostgreSQL unit tests of
 * src/db (see db_checks.h).
 */
#include "db_checks.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/common.h"
#include "db/db.h"

void db_check_events_prune(struct db *db, int n1_resolved_before)
{
	struct db_event *ev = NULL;
	size_t cnt = 0;
	int pruned = -1;
	int64_t now;

	assert_int_equal(db_event_raise(db, "n1", "prune-k", "o1", NULL), 0);
	assert_int_equal(db_event_resolve(db, "prune-k", "o1"), 0);
	assert_int_equal(db_event_raise(db, "n2", "prune-k", "o2", NULL), 0);
	assert_int_equal(db_event_resolve(db, "prune-k", "o2"), 0);
	assert_int_equal(db_event_raise(db, "n1", "prune-k", "o3", NULL), 0);
	now = clock_wall_ms();
	assert_int_equal(db_event_prune(db, "n1", now - 3600000, &pruned), 0);
	assert_int_equal(pruned, 0); /* resolved just now: kept */
	assert_int_equal(db_event_prune(db, "n1", now + 1000, &pruned), 0);
	assert_int_equal(pruned, 1 + n1_resolved_before); /* o2 is n2's, o3 is open */
	assert_int_equal(db_event_list(db, true, &ev, &cnt), 0);
	for (size_t i = 0; i < cnt; i++)
		assert_false(ev[i].resolved_at && strcmp(ev[i].node, "n1") == 0);
	db_event_list_free(ev, cnt);
	assert_int_equal(db_event_prune(db, NULL, now + 1000, &pruned), 0);
	assert_true(pruned >= 1); /* o2 and any other node's resolved row */
	assert_int_equal(db_event_list(db, true, &ev, &cnt), 0);
	for (size_t i = 0; i < cnt; i++)
		assert_int_equal(ev[i].resolved_at, 0);
	assert_true(cnt >= 1); /* o3, open, stays */
	db_event_list_free(ev, cnt);
	assert_int_equal(db_event_prune(db, "bad node", now, &pruned), -EINVAL);
	assert_int_equal(pruned, 0);
}
