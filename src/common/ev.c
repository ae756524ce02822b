/*
 * ev.c: the single-threaded event loop (epoll + a timer heap + a defer queue).
 *
 * fd handlers live in a table indexed by fd. A handler removed during a
 * dispatch round is marked dead and its pending events are skipped, so a
 * callback may close any connection, including its own. Timers are a binary
 * min-heap keyed by due time; each timer knows its heap slot so stop is
 * O(log n). Deferred calls run after the fd and timer callbacks of a round.
 */
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EV_MAX_EVENTS 256

struct ev_handler {
	ev_fd_cb cb;
	void *arg;
	uint64_t gen; /* bumped on every add/remove; stale events are skipped */
	bool live;
};

struct ev_timer {
	uint64_t due_ms;
	uint64_t period_ms;
	ev_timer_cb cb;
	void *arg;
	size_t slot; /* index in the heap, SIZE_MAX when not queued */
	bool firing;
	bool stopped;
};

struct ev_defer_item {
	ev_defer_cb cb;
	void *arg;
	struct ev_defer_item *next;
};

struct ev_loop {
	int epfd;
	bool stop;
	struct ev_handler *fds;
	size_t nfds;
	struct ev_timer **heap;
	size_t heap_len, heap_cap;
	struct ev_defer_item *defer_head, *defer_tail;
	unsigned spin_us;
	uint64_t last_work_us; /* when the last round dispatched something */
};

int ev_loop_create(struct ev_loop **out)
{
	struct ev_loop *loop = mem_zalloc(sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = -errno;
		mem_free(loop);
		return err;
	}
	*out = loop;
	return 0;
}

void ev_loop_destroy(struct ev_loop *loop)
{
	if (!loop)
		return;
	for (size_t i = 0; i < loop->heap_len; i++)
		mem_free(loop->heap[i]);
	while (loop->defer_head) {
		struct ev_defer_item *d = loop->defer_head;
		loop->defer_head = d->next;
		mem_free(d);
	}
	mem_free(loop->heap);
	mem_free(loop->fds);
	close(loop->epfd);
	mem_free(loop);
}

void ev_loop_stop(struct ev_loop *loop) { loop->stop = true; }
void ev_loop_set_spin(struct ev_loop *loop, unsigned us) { loop->spin_us = us; }
bool ev_loop_stopping(const struct ev_loop *loop) { return loop->stop; }

static int ev_table_grow(struct ev_loop *loop, int fd)
{
	size_t want = loop->nfds ? loop->nfds : 64;

	if ((size_t)fd < loop->nfds)
		return 0;
	while (want <= (size_t)fd)
		want *= 2;
	struct ev_handler *t = mem_realloc(loop->fds, want * sizeof(*t));
	if (!t)
		return -ENOMEM;
	memset(t + loop->nfds, 0, (want - loop->nfds) * sizeof(*t));
	loop->fds = t;
	loop->nfds = want;
	return 0;
}

int ev_fd_add(struct ev_loop *loop, int fd, uint32_t events, ev_fd_cb cb, void *arg)
{
	struct epoll_event ev = { .events = events };
	int err;

	if (fd < 0 || !cb)
		return -EINVAL;
	err = ev_table_grow(loop, fd);
	if (err)
		return err;
	if (loop->fds[fd].live)
		return -EEXIST;
	struct ev_handler *h = &loop->fds[fd];
	h->gen++;
	ev.data.u64 = ((uint64_t)(uint32_t)fd) | (h->gen << 32);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	h->cb = cb;
	h->arg = arg;
	h->live = true;
	return 0;
}

int ev_fd_modify(struct ev_loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].live)
		return -ENOENT;
	ev.data.u64 = ((uint64_t)(uint32_t)fd) | (loop->fds[fd].gen << 32);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int ev_fd_remove(struct ev_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].live)
		return -ENOENT;
	loop->fds[fd].live = false;
	loop->fds[fd].gen++;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------ timers */

static void heap_swap(struct ev_loop *loop, size_t a, size_t b)
{
	struct ev_timer *t = loop->heap[a];

	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->slot = a;
	loop->heap[b]->slot = b;
}

static void heap_up(struct ev_loop *loop, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (loop->heap[p]->due_ms <= loop->heap[i]->due_ms)
			break;
		heap_swap(loop, p, i);
		i = p;
	}
}

static void heap_down(struct ev_loop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < loop->heap_len && loop->heap[l]->due_ms < loop->heap[m]->due_ms)
			m = l;
		if (r < loop->heap_len && loop->heap[r]->due_ms < loop->heap[m]->due_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(loop, i, m);
		i = m;
	}
}

static int heap_push(struct ev_loop *loop, struct ev_timer *t)
{
	if (loop->heap_len == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
		struct ev_timer **h = mem_realloc(loop->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->heap_cap = cap;
	}
	t->slot = loop->heap_len;
	loop->heap[loop->heap_len++] = t;
	heap_up(loop, t->slot);
	return 0;
}

static void heap_remove(struct ev_loop *loop, struct ev_timer *t)
{
	size_t i = t->slot;

	if (i == SIZE_MAX)
		return;
	loop->heap_len--;
	if (i != loop->heap_len) {
		loop->heap[i] = loop->heap[loop->heap_len];
		loop->heap[i]->slot = i;
		heap_down(loop, i);
		heap_up(loop, i);
	}
	t->slot = SIZE_MAX;
}

int ev_timer_start(struct ev_loop *loop, uint64_t delay_ms, uint64_t period_ms,
		   ev_timer_cb cb, void *arg, struct ev_timer **out)
{
	struct ev_timer *t = mem_zalloc(sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	t->due_ms = clock_mono_ms() + delay_ms;
	t->period_ms = period_ms;
	t->cb = cb;
	t->arg = arg;
	err = heap_push(loop, t);
	if (err) {
		mem_free(t);
		return err;
	}
	if (out)
		*out = t;
	return 0;
}

void ev_timer_stop(struct ev_loop *loop, struct ev_timer *timer)
{
	if (!timer)
		return;
	if (timer->firing) {
		/* Freed by the dispatcher once its callback returns. */
		timer->stopped = true;
		return;
	}
	heap_remove(loop, timer);
	mem_free(timer);
}

static void ev_timers_run(struct ev_loop *loop)
{
	uint64_t now = clock_mono_ms();

	while (loop->heap_len > 0 && loop->heap[0]->due_ms <= now) {
		struct ev_timer *t = loop->heap[0];
		heap_remove(loop, t);
		t->firing = true;
		t->cb(loop, t, t->arg);
		t->firing = false;
		if (t->stopped || t->period_ms == 0) {
			mem_free(t);
			continue;
		}
		t->due_ms = COMMON_MAX(t->due_ms + t->period_ms, now);
		if (heap_push(loop, t) != 0)
			mem_free(t); /* out of memory: the periodic timer ends */
	}
}

static int ev_timeout_ms(struct ev_loop *loop, int timeout_ms)
{
	if (loop->defer_head)
		return 0;
	if (loop->heap_len == 0)
		return timeout_ms;
	uint64_t now = clock_mono_ms();
	uint64_t due = loop->heap[0]->due_ms;
	int t = due <= now ? 0 : (int)COMMON_MIN(due - now, (uint64_t)INT32_MAX);
	if (timeout_ms >= 0 && timeout_ms < t)
		t = timeout_ms;
	return t;
}

/* ------------------------------------------------------------- defer */

int ev_defer(struct ev_loop *loop, ev_defer_cb cb, void *arg)
{
	struct ev_defer_item *d = mem_alloc(sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->cb = cb;
	d->arg = arg;
	d->next = NULL;
	if (loop->defer_tail)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
	return 0;
}

static void ev_defers_run(struct ev_loop *loop)
{
	/* Only what was queued before this round: new defers wait for the next. */
	struct ev_defer_item *d = loop->defer_head;

	loop->defer_head = loop->defer_tail = NULL;
	while (d) {
		struct ev_defer_item *next = d->next;
		d->cb(loop, d->arg);
		mem_free(d);
		d = next;
	}
}

int ev_loop_run_once(struct ev_loop *loop, int timeout_ms)
{
	struct epoll_event events[EV_MAX_EVENTS];
	int n;

	int wait_ms = ev_timeout_ms(loop, timeout_ms);

	if (wait_ms != 0 && loop->spin_us && clock_mono_us() - loop->last_work_us < loop->spin_us)
		wait_ms = 0; /* recently busy: poll instead of sleeping */
	n = epoll_wait(loop->epfd, events, EV_MAX_EVENTS, wait_ms);
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	if (n > 0)
		loop->last_work_us = clock_mono_us();
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)events[i].data.u64;
		uint64_t gen = events[i].data.u64 >> 32;
		if ((size_t)fd >= loop->nfds)
			continue;
		struct ev_handler *h = &loop->fds[fd];
		if (!h->live || (h->gen & 0xffffffffull) != gen)
			continue;
		h->cb(loop, fd, events[i].events, h->arg);
	}
	ev_timers_run(loop);
	ev_defers_run(loop);
	return 0;
}

int ev_loop_run(struct ev_loop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		int err = ev_loop_run_once(loop, -1);
		if (err)
			return err;
	}
	return 0;
}
