/*
 * db_checks.h: checks of src/db that the SQLite (test_db.c) and the
 * PostgreSQL (test_db_pg.c) unit tests run alike, so both backends are held
 * to one behaviour by one piece of test code.
 */
#ifndef DE_TEST_DB_CHECKS_H
#define DE_TEST_DB_CHECKS_H

struct db;

/* db_event_prune: only resolved rows, resolved before the cutoff, of the node
 * asked (NULL: every node); open rows stay; a bad node name is refused.
 * n1_resolved_before: resolved events of node "n1" the caller made earlier. */
void db_check_events_prune(struct db *db, int n1_resolved_before);

#endif /* DE_TEST_DB_CHECKS_H */
