/*
 * client.c: blocking JSON-RPC client over a unix socket (one per thread).
 *
 * Requests carry increasing integer ids; replies come back in order (the
 * server guarantees it), and each reply's id is checked against the oldest
 * outstanding request. A timeout closes the connection: the outcome of the
 * call is unknown, and a late reply must never be read as the answer to a
 * later call.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "json/json.h"
#include "rpc/rpc.h"

#define MOD "rpc-client"
#define CLIENT_MAX_REPLY (1024u * 1024 * 1024)
#define CLIENT_READ_SIZE 65536u
/* How long a call spins on its socket before sleeping in poll() (us). */
#define CLIENT_SPIN_US 50

struct rpc_client {
	int fd;
	uint64_t next_id;
	uint64_t oldest_id; /* id of the oldest outstanding request */
	unsigned outstanding;
	int send_timeout_ms;
	bool corked;        /* sends are queued in out until uncorked */
	bool stashed;       /* a reply taken by rpc_client_ready() is in stash */
	struct json_buf stash;
	struct json_framer *framer;
	struct json_buf out;
};

static void client_close(struct rpc_client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static struct rpc_client *client_new(void)
{
	struct rpc_client *c = mem_zalloc(sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	c->next_id = 1;
	c->oldest_id = 1;
	c->send_timeout_ms = 30000;
	if (json_framer_create(CLIENT_MAX_REPLY, &c->framer)) {
		mem_free(c);
		return NULL;
	}
	return c;
}

int rpc_client_adopt_fd(int fd, struct rpc_client **out)
{
	struct rpc_client *c;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	c = client_new();
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	*out = c;
	return 0;
}

int rpc_client_connect(const char *path, int timeout_ms, struct rpc_client **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rpc_client *c;
	uint64_t deadline;
	int rc;

	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (timeout_ms < 0)
		timeout_ms = 10000;
	deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	c = client_new();
	if (!c)
		return -ENOMEM;
	for (;;) {
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			rc = -errno;
			goto fail;
		}
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		rc = -errno;
		client_close(c);
		/* A unix socket reports a full accept backlog as EAGAIN. */
		if (rc != -EAGAIN && rc != -EINTR)
			goto fail;
		if (clock_mono_ms() >= deadline) {
			rc = -ETIMEDOUT;
			goto fail;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	*out = c;
	return 0;
fail:
	rpc_client_destroy(c);
	return rc;
}

void rpc_client_destroy(struct rpc_client *c)
{
	if (!c)
		return;
	client_close(c);
	json_buf_free(&c->stash);
	json_framer_destroy(c->framer);
	json_buf_free(&c->out);
	mem_free(c);
}

unsigned rpc_client_outstanding(const struct rpc_client *c)
{
	return c->outstanding;
}

bool rpc_client_connected(const struct rpc_client *c)
{
	return c->fd >= 0;
}

void rpc_client_set_send_timeout(struct rpc_client *c, int timeout_ms)
{
	c->send_timeout_ms = timeout_ms;
}

/* Milliseconds left until deadline (UINT64_MAX = none) for poll(). */
static int remaining_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = clock_mono_ms();
	if (now >= deadline)
		return 0;
	return deadline - now > 1000000 ? 1000000 : (int)(deadline - now);
}

static uint64_t deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : clock_mono_ms() + (uint64_t)timeout_ms;
}

/* One read into the framer. 0, or -errno (connection then closed). */
static int client_read_some(struct rpc_client *c)
{
	void *space = json_framer_space(c->framer, CLIENT_READ_SIZE);
	ssize_t n;

	if (!space)
		return -ENOMEM;
	n = recv(c->fd, space, CLIENT_READ_SIZE, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		n = -errno;
		client_close(c);
		return (int)n;
	}
	if (n == 0) {
		client_close(c);
		return -ECONNRESET;
	}
	json_framer_commit(c->framer, (size_t)n);
	return 0;
}

/* Writes c->out completely, reading replies meanwhile so a server that
 * waits for us to read cannot deadlock us. */
static int client_send_buf(struct rpc_client *c, uint64_t deadline)
{
	size_t off = 0;
	int rc = 0;

	while (off < c->out.len) {
		struct pollfd p = { .fd = c->fd, .events = POLLOUT | POLLIN };
		ssize_t n = send(c->fd, c->out.data + off, c->out.len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			rc = -errno;
			client_close(c);
			break;
		}
		n = poll(&p, 1, remaining_ms(deadline));
		if (n == 0) {
			rc = -ETIMEDOUT;
			client_close(c);
			break;
		}
		if (n > 0 && (p.revents & POLLIN)) {
			rc = client_read_some(c);
			if (rc)
				break;
		}
	}
	json_buf_reset(&c->out);
	return rc;
}

/* {"jsonrpc":"2.0","method":M,"id":N[,"params":P]} without building a json_t id. */
static int encode_request(struct json_buf *b, const char *method, uint64_t id, const json_t *params)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":";
	size_t mark = b->len;
	char num[24], *p = num + sizeof(num);

	do {
		*--p = (char)('0' + id % 10);
		id /= 10;
	} while (id);
	if (json_buf_append(b, head, sizeof(head) - 1) ||
	    json_encode_string(b, method, strlen(method)) || json_buf_append(b, ",\"id\":", 6) ||
	    json_buf_append(b, p, (size_t)(num + sizeof(num) - p)) ||
	    (params && (json_buf_append(b, ",\"params\":", 10) || json_encode_value(b, params))) ||
	    json_buf_append(b, "}", 1)) {
		b->len = mark;
		return -ENOMEM;
	}
	return 0;
}

int rpc_client_send(struct rpc_client *c, const char *method, json_t *params, uint64_t *id)
{
	int rc;

	if (c->fd < 0) {
		rc = -ENOTCONN;
		goto out;
	}
	if (!method) {
		rc = -EINVAL;
		goto out;
	}
	if (!c->corked)
		json_buf_reset(&c->out);
	rc = encode_request(&c->out, method, c->next_id, params);
	if (rc)
		goto out;
	if (c->outstanding == 0)
		c->oldest_id = c->next_id;
	if (id)
		*id = c->next_id;
	c->next_id++;
	c->outstanding++;
	if (c->corked)
		goto out;
	rc = client_send_buf(c, deadline_after(c->send_timeout_ms));
out:
	json_decref(params);
	return rc;
}

static void error_fill(struct rpc_error *err, int code, const char *msg)
{
	if (!err)
		return;
	err->code = code;
	snprintf(err->message, sizeof(err->message), "%s", msg ? msg : "");
}

/* Takes one reply's raw bytes, waiting until deadline. */
static int client_next_value(struct rpc_client *c, uint64_t deadline, const char **raw,
			     size_t *len)
{
	if (c->stashed) {
		c->stashed = false;
		*raw = c->stash.data;
		*len = c->stash.len;
		return 0;
	}
	uint64_t spin_until = clock_mono_us() + CLIENT_SPIN_US;

	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int rc = json_framer_next_raw(c->framer, raw, len);

		if (rc == 1)
			return 0;
		if (rc < 0) {
			LOG_ERROR(MOD, "invalid reply from server: %s", common_strerror(rc));
			client_close(c);
			return -EPROTO;
		}
		if (c->fd < 0)
			return -ENOTCONN;
		if (clock_mono_us() < spin_until) {
			/* A local target usually answers within microseconds: poll
			 * the socket briefly before paying for a sleep and a wake-up. */
			rc = client_read_some(c);
			if (rc)
				return rc;
			continue;
		}
		rc = poll(&p, 1, remaining_ms(deadline));
		if (rc == 0) {
			client_close(c);
			return -ETIMEDOUT;
		}
		if (rc < 0 && errno != EINTR) {
			rc = -errno;
			client_close(c);
			return rc;
		}
		if (rc > 0) {
			rc = client_read_some(c);
			if (rc)
				return rc;
		}
	}
}

/*
 * Fast path for the replies SPDK and disktgt write,
 * {"jsonrpc":"2.0","id":N,"result":...}: the id is read from the text and the
 * result is parsed only if the caller wants it. Returns 1 if handled (rc in
 * *rc), 0 to fall back to a full parse.
 */
static int reply_fast(const char *raw, size_t len, uint64_t *id, json_t **result, int *rc)
{
	static const char pre[] = "{\"jsonrpc\":\"2.0\",\"id\":";
	static const char mid[] = ",\"result\":";
	const char *p = raw + sizeof(pre) - 1, *e = raw + len;
	uint64_t v = 0;
	int digits = 0;

	if (len < sizeof(pre) + sizeof(mid) || memcmp(raw, pre, sizeof(pre) - 1) || e[-1] != '}')
		return 0;
	while (p < e && *p >= '0' && *p <= '9' && digits < 19) {
		v = v * 10 + (uint64_t)(*p++ - '0');
		digits++;
	}
	if (digits == 0 || (size_t)(e - p) < sizeof(mid) || memcmp(p, mid, sizeof(mid) - 1))
		return 0;
	p += sizeof(mid) - 1;
	*id = v;
	*rc = 0;
	if (result) {
		json_error_t jerr;

		*result = json_loadb(p, (size_t)(e - 1 - p), JSON_DECODE_ANY, &jerr);
		if (!*result)
			*rc = -EPROTO;
	}
	return 1;
}

static int client_recv(struct rpc_client *c, uint64_t deadline, uint64_t *id, json_t **result,
		       struct rpc_error *err)
{
	json_t *v = NULL, *jid, *e;
	uint64_t expect = c->oldest_id, got = 0;
	const char *raw;
	size_t len;
	int rc;

	if (result)
		*result = NULL;
	if (c->outstanding == 0)
		return -EAGAIN;
	if (c->fd < 0 && !c->stashed && json_framer_pending(c->framer) == 0)
		return -ENOTCONN;
	if (c->corked && c->out.len) {
		/* Never wait for replies to requests still sitting in our buffer. */
		rc = client_send_buf(c, deadline);
		if (rc)
			return rc;
	}
	rc = client_next_value(c, deadline, &raw, &len);
	if (rc)
		return rc;
	if (reply_fast(raw, len, &got, result, &rc)) {
		if (got != expect || rc) {
			if (result) {
				json_decref(*result);
				*result = NULL;
			}
			goto bad;
		}
		c->outstanding--;
		c->oldest_id++;
		if (id)
			*id = expect;
		return 0;
	}
	v = json_loadb(raw, len, JSON_DECODE_ANY, NULL);
	jid = json_object_get(v, "id");
	if (!json_is_object(v) || !json_is_integer(jid) ||
	    (uint64_t)json_integer_value(jid) != expect)
		goto bad;
	c->outstanding--;
	c->oldest_id++;
	if (id)
		*id = expect;
	e = json_object_get(v, "error");
	if (e) {
		json_t *code = json_object_get(e, "code");
		json_t *msg = json_object_get(e, "message");

		error_fill(err, json_is_integer(code) ? (int)json_integer_value(code) : 0,
			   json_is_string(msg) ? json_string_value(msg) : "");
		rc = -EREMOTE;
	} else if (json_object_get(v, "result")) {
		if (result)
			*result = json_incref(json_object_get(v, "result"));
		rc = 0;
	} else {
		client_close(c);
		rc = -EPROTO;
	}
	json_decref(v);
	return rc;
bad:
	LOG_ERROR(MOD, "unexpected reply (expected id %llu)", (unsigned long long)expect);
	client_close(c);
	json_decref(v);
	return -EPROTO;
}

void rpc_client_cork(struct rpc_client *c)
{
	if (!c->corked)
		json_buf_reset(&c->out);
	c->corked = true;
}

int rpc_client_uncork(struct rpc_client *c)
{
	c->corked = false;
	if (c->fd < 0)
		return -ENOTCONN;
	if (c->out.len == 0)
		return 0;
	return client_send_buf(c, deadline_after(c->send_timeout_ms));
}

bool rpc_client_ready(struct rpc_client *c)
{
	const char *raw;
	size_t len;

	if (c->stashed)
		return true;
	if (c->outstanding == 0)
		return false;
	if (json_framer_next_raw(c->framer, &raw, &len) == 1) {
		json_buf_reset(&c->stash);
		if (json_buf_append(&c->stash, raw, len) == 0) {
			c->stashed = true;
			return true;
		}
		/* No memory to keep it: the reply is lost, so is the stream. */
		client_close(c);
	}
	return false;
}

int rpc_client_recv(struct rpc_client *c, int timeout_ms, uint64_t *id, json_t **result,
		    struct rpc_error *err)
{
	return client_recv(c, deadline_after(timeout_ms), id, result, err);
}

int rpc_client_call(struct rpc_client *c, const char *method, json_t *params, int timeout_ms,
		    json_t **result, struct rpc_error *err)
{
	uint64_t deadline = deadline_after(timeout_ms);
	int saved = c->send_timeout_ms;
	int rc;

	if (result)
		*result = NULL;
	if (c->fd < 0 || c->outstanding) {
		json_decref(params);
		return c->fd < 0 ? -ENOTCONN : -EBUSY;
	}
	c->send_timeout_ms = timeout_ms;
	rc = rpc_client_send(c, method, params, NULL);
	c->send_timeout_ms = saved;
	if (rc)
		return rc;
	return client_recv(c, deadline, NULL, result, err);
}
