/*
 * wait.c: `--wait[=SECONDS]`. Follows the lvol/snapshot until it reaches the
 * wanted state: re-reads the row when the store says another connection wrote
 * (db_data_wait: PostgreSQL blocks until the data NOTIFY arrives, SQLite polls
 * PRAGMA data_version every few ms, so an idle wait reads no row), and at
 * least once a second. Shows progress on stderr (state changes, reasons,
 * zeroing progress for resizes), and maps the outcome to an exit code: 0
 * reached, 1 FAILED (with the reason), 3 timed out (the operation goes on).
 */
#include "diskctl.h"

#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define REREAD_MS 1000 /* re-read the row at least this often, whatever the store says */

/* Waits for the next write of another connection (or REREAD_MS, or the
 * deadline). *reread: the row must be read now. */
static int wait_next(struct ctl *ctl, uint64_t start, int seconds, uint64_t last_read,
		     uint64_t *dv, bool *reread)
{
	uint64_t now = clock_mono_ms(), deadline = start + (uint64_t)seconds * 1000;
	uint64_t next = last_read + REREAD_MS, until = next < deadline ? next : deadline;
	int rc;

	*reread = false;
	if (now >= until) {
		*reread = now >= next;
		return 0;
	}
	rc = db_data_wait(ctl->db, *dv, (int)(until - now), dv);
	if (rc < 0)
		return rc;
	*reread = rc == 1 || clock_mono_ms() >= next;
	return 0;
}

struct seen {
	int state;
	char reason[DB_REASON_MAX];
	int zero_pct;
	uint64_t zero_to;
};

static void show_lvol(const struct db_lvol *l, struct seen *s)
{
	char a[32], b[32];

	if ((int)l->state != s->state || strcmp(l->reason, s->reason)) {
		if (l->reason[0])
			fprintf(stderr, "lvol %" PRId64 ": %s (%s)\n", l->id,
				db_lvol_state_name(l->state), l->reason);
		else
			fprintf(stderr, "lvol %" PRId64 ": %s\n", l->id, db_lvol_state_name(l->state));
		s->state = (int)l->state;
		snprintf(s->reason, sizeof(s->reason), "%s", l->reason);
	}
	if (l->state == DB_LVOL_RESIZING && l->zero_to > l->zero_from) {
		uint64_t total = l->zero_to - l->zero_from;
		uint64_t done = l->zero_done > l->zero_from ? l->zero_done - l->zero_from : 0;
		int pct = (int)(done * 100 / total);

		if (done > total)
			pct = 100;
		if (s->zero_to != l->zero_to || pct / 10 != s->zero_pct / 10 || s->zero_pct < 0) {
			fprintf(stderr, "lvol %" PRId64 ": zeroing %d%% (%s of %s)\n", l->id, pct,
				size_format(done, a, sizeof(a)), size_format(total, b, sizeof(b)));
			s->zero_pct = pct;
			s->zero_to = l->zero_to;
		}
	}
}

int ctl_wait_lvol(struct ctl *ctl, int64_t id, enum db_lvol_state want, int seconds)
{
	struct seen seen = { .state = -1, .zero_pct = -1 };
	uint64_t start = clock_mono_ms(), dv = 0, last_read;
	bool reread = true;
	int rc;

	rc = db_data_version(ctl->db, &dv);
	if (rc < 0)
		return ctl_db_err(ctl, rc, "wait");
	for (;;) {
		if (reread) {
			struct db_lvol l;

			last_read = clock_mono_ms();
			rc = db_lvol_get(ctl->db, id, &l);
			if (rc < 0)
				return ctl_db_err(ctl, rc, "wait");
			show_lvol(&l, &seen);
			if (l.state == want) {
				db_lvol_clear(&l);
				return EXIT_OK;
			}
			if (l.state == DB_LVOL_FAILED) {
				int code = ctl_err(EXIT_ERR, "lvol %" PRId64 " FAILED: %s", id,
						   l.reason[0] ? l.reason : "no reason recorded");

				db_lvol_clear(&l);
				return code;
			}
			if (want == DB_LVOL_READY &&
			    (l.state == DB_LVOL_DELETING || l.state == DB_LVOL_DELETED)) {
				db_lvol_clear(&l);
				return ctl_err(EXIT_ERR, "lvol %" PRId64 " is being deleted", id);
			}
			db_lvol_clear(&l);
		}
		if (clock_mono_ms() - start >= (uint64_t)seconds * 1000)
			break;
		rc = wait_next(ctl, start, seconds, last_read, &dv, &reread);
		if (rc < 0)
			return ctl_db_err(ctl, rc, "wait");
	}
	return ctl_err(EXIT_TIMEOUT,
		       "timed out after %d s waiting for lvol %" PRId64 " to become %s; the operation goes on",
		       seconds, id, db_lvol_state_name(want));
}

int ctl_wait_snapshot(struct ctl *ctl, int64_t id, enum db_snapshot_state want, int seconds)
{
	uint64_t start = clock_mono_ms(), dv = 0, last_read;
	char last_reason[DB_REASON_MAX] = "";
	int last_state = -1;
	bool reread = true;
	int rc;

	rc = db_data_version(ctl->db, &dv);
	if (rc < 0)
		return ctl_db_err(ctl, rc, "wait");
	for (;;) {
		if (reread) {
			struct db_snapshot s;

			last_read = clock_mono_ms();
			rc = db_snapshot_get(ctl->db, id, &s);
			if (rc < 0)
				return ctl_db_err(ctl, rc, "wait");
			if ((int)s.state != last_state || strcmp(s.reason, last_reason)) {
				if (s.reason[0])
					fprintf(stderr, "snapshot %" PRId64 ": %s (%s)\n", id,
						db_snapshot_state_name(s.state), s.reason);
				else
					fprintf(stderr, "snapshot %" PRId64 ": %s\n", id,
						db_snapshot_state_name(s.state));
				last_state = (int)s.state;
				snprintf(last_reason, sizeof(last_reason), "%s", s.reason);
			}
			if (s.state == want)
				return EXIT_OK;
			if (s.state == DB_SNAPSHOT_FAILED)
				return ctl_err(EXIT_ERR, "snapshot %" PRId64 " FAILED: %s", id,
					       s.reason[0] ? s.reason : "no reason recorded");
		}
		if (clock_mono_ms() - start >= (uint64_t)seconds * 1000)
			break;
		rc = wait_next(ctl, start, seconds, last_read, &dv, &reread);
		if (rc < 0)
			return ctl_db_err(ctl, rc, "wait");
	}
	return ctl_err(EXIT_TIMEOUT,
		       "timed out after %d s waiting for snapshot %" PRId64 " to become %s; the operation goes on",
		       seconds, id, db_snapshot_state_name(want));
}
