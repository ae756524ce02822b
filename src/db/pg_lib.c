/*
 * pg_lib.c: libpq, loaded when the first postgresql:// store is opened
 * instead of linked. libpq brings 21 more shared libraries (TLS, Kerberos,
 * LDAP and theirs) that every diskctl and diskengine process would otherwise
 * map at start, ~7 ms per process on a small VM, though most of them use the
 * embedded SQLite store. pg.c and pg_schema.c call PQ* as usual: the names
 * are macros for the pointers filled in here (pg_private.h).
 */
#define PG_LIB_NO_MACROS
#include "db/pg_private.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#define PG_LIB_SONAME "libpq.so.5"

struct pg_lib pg_lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_err[256];

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);

	if (!p && !load_err[0])
		snprintf(load_err, sizeof(load_err), "%s has no %s", PG_LIB_SONAME, name);
	return p;
}

static void load(void)
{
	void *h = dlopen(PG_LIB_SONAME, RTLD_LAZY | RTLD_LOCAL);

	if (!h) {
		snprintf(load_err, sizeof(load_err), "%s", dlerror());
		load_rc = -ENOTSUP;
		return;
	}
#define X(name) pg_lib.name = (__typeof__(pg_lib.name))sym(h, #name);
	PG_LIB_FUNCS(X)
#undef X
	if (load_err[0]) {
		dlclose(h);
		load_rc = -ENOTSUP;
	}
	/* On success the handle stays open for the life of the process. */
}

int pg_lib_load(char *err, size_t errlen)
{
	pthread_once(&once, load);
	if (load_rc)
		snprintf(err, errlen, "PostgreSQL support needs libpq (Debian package libpq5): %s",
			 load_err);
	return load_rc;
}
