/*
 * batch.c: `diskctl batch`, commands read from stdin and run on the one
 * database connection main() opened. A script or an orchestrator that
 * creates many volumes then pays neither a process start nor a new database
 * connection (a new PostgreSQL backend) per command. Each line is split into
 * words (split_words below), goes through the same option scan, command
 * lookup and argument parser as a command line, and runs; stdout is flushed
 * after each command so a program can write a line and read its answer.
 * With --json each command answers with exactly one line (its --json output
 * wrapped with the line number, exit code, error and time).
 */
#include "diskctl.h"

#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_LINE_MAX 65536 /* longer lines are refused (and skipped) */
#define BATCH_WORDS_MAX 256

/*
 * Splits line into words, written one after another (each NUL-terminated)
 * into buf (at least as long as line), pointers in words[]. Blanks separate;
 * '...' is literal; "..." keeps blanks and takes \" and \\ as escapes; a
 * backslash outside quotes takes the next character as is; # at the start of
 * a word comments out the rest. Returns the word count, or -1 with *why set.
 */
static int split_words(const char *line, char *buf, char **words, const char **why)
{
	const char *s = line;
	char *o = buf;
	int n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (!*s || *s == '#')
			return n;
		if (n == BATCH_WORDS_MAX) {
			*why = "too many words";
			return -1;
		}
		words[n++] = o;
		while (*s && *s != ' ' && *s != '\t' && *s != '\r') {
			if (*s == '\'') {
				for (s++; *s && *s != '\''; s++)
					*o++ = *s;
				if (!*s) {
					*why = "unterminated ' quote";
					return -1;
				}
				s++;
			} else if (*s == '"') {
				for (s++; *s && *s != '"'; s++) {
					if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
						s++;
					*o++ = *s;
				}
				if (!*s) {
					*why = "unterminated \" quote";
					return -1;
				}
				s++;
			} else if (*s == '\\' && s[1]) {
				*o++ = s[1];
				s += 2;
			} else {
				*o++ = *s++;
			}
		}
		*o++ = '\0';
	}
}

/* Runs one command line of n words on ctl's connection; its exit code.
 * json: every command's output is captured into *result instead of printed. */
static int run_words(struct ctl *ctl, int n, char **words, bool json, json_t **result)
{
	char *rest[BATCH_WORDS_MAX];
	const struct ctl_cmd *cmd = NULL;
	struct ctl_args args;
	struct ctl line = { .db_path = ctl->db_path, .db = ctl->db, .json = json || ctl->json };
	json_t *out = NULL;
	bool help = false;
	int nrest = 0, code;

	if ((code = ctl_globals(n, words, false, &line, &help, rest, &nrest)) != 0)
		return code;
	if (help && json)
		return ctl_usage(NULL, "--help does not answer in a JSON batch; "
				       "run 'diskctl <command> --help'");
	if ((code = ctl_command(nrest, rest, help, &cmd, &args)) != CTL_RUN)
		return code;
	if (cmd->run == ctl_batch)
		return ctl_usage(NULL, "a batch cannot run another batch");
	line.cmd = cmd;
	if (json && !(out = json_array()))
		return ctl_err(EXIT_ERR, "out of memory");
	ctl_json_capture(out);
	code = cmd->run(&line, &args);
	ctl_json_capture(NULL);
	/* a command prints one JSON document; keep all should one print more */
	if (out && json_array_size(out) == 1) {
		*result = json_incref(json_array_get(out, 0));
		json_decref(out);
	} else if (out && json_array_size(out) == 0) {
		json_decref(out);
	} else {
		*result = out;
	}
	return code;
}

/* The one-line JSON answer of a command (stolen: result). */
static void answer_json(unsigned long lineno, int code, json_t *result, double ms)
{
	json_t *o = json_object();
	char *s;

	if (!o) {
		json_decref(result);
		return;
	}
	json_object_set_new(o, "line", json_integer((json_int_t)lineno));
	json_object_set_new(o, "exit", json_integer(code));
	json_object_set_new(o, "result", result ? result : json_null());
	if (code != EXIT_OK)
		json_object_set_new(o, "error", json_string(ctl_err_last()));
	json_object_set_new(o, "ms", json_real(ms));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(4));
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

int ctl_batch(struct ctl *ctl, struct ctl_args *a)
{
	bool keep_going = ctl_opt_flag(a, "keep-going"), json = ctl->json;
	char *line = NULL, *buf = NULL, *words[BATCH_WORDS_MAX], prefix[40];
	unsigned long lineno = 0, ran = 0, failed = 0, first_line = 0;
	size_t cap = 0;
	ssize_t len;
	int first = EXIT_OK;

	while ((len = getline(&line, &cap, stdin)) >= 0) {
		json_t *result = NULL;
		const char *why = NULL;
		uint64_t t0;
		int n, code;

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		snprintf(prefix, sizeof(prefix), "line %lu: ", lineno);
		ctl_err_context(prefix);
		t0 = clock_mono_ns();
		if (len > BATCH_LINE_MAX) {
			code = ctl_usage(NULL, "line longer than %d bytes", BATCH_LINE_MAX);
		} else if (strlen(line) != (size_t)len) {
			code = ctl_usage(NULL, "line holds a NUL byte");
		} else {
			char *nb = realloc(buf, (size_t)len + 1);

			if (!nb) {
				code = ctl_err(EXIT_ERR, "out of memory");
			} else {
				buf = nb;
				n = split_words(line, buf, words, &why);
				if (n == 0)
					continue; /* blank or comment */
				if (n < 0)
					code = ctl_usage(NULL, "%s", why);
				else
					code = run_words(ctl, n, words, json, &result);
			}
		}
		ran++;
		if (json)
			answer_json(lineno, code, result, (double)(clock_mono_ns() - t0) / 1e6);
		else
			json_decref(result);
		fflush(stdout);
		if (code != EXIT_OK) {
			failed++;
			if (first == EXIT_OK) {
				first = code;
				first_line = lineno;
			}
			if (!keep_going)
				break;
		}
	}
	ctl_err_context(NULL);
	if (ferror(stdin))
		first = ctl_err(EXIT_ERR, "reading stdin failed after line %lu", lineno);
	else if (failed && !keep_going)
		ctl_err(first, "batch stopped at line %lu (exit %d); later lines were not run",
			first_line, first);
	else if (failed)
		ctl_err(first, "batch: %lu commands, %lu failed (first at line %lu, exit %d)", ran,
			failed, first_line, first);
	free(line);
	free(buf);
	return first;
}
