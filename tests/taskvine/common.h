/* What the TaskVine-style test programs share: how the harness tells them where
 * to listen and where its HTTP server is, and how they report a wrong result.
 * Each program exits 0 only when every output it checked is right. */
#ifndef TV_COMMON_H
#define TV_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int tv_failures __attribute__((unused)) = 0;

/* The port to listen on: $TV_PORT (the harness passes 0, any free port). */
static inline int tv_port(void)
{
	const char *p = getenv("TV_PORT");
	return p ? atoi(p) : VINE_DEFAULT_PORT;
}

/* $TV_URL/name: a file the harness's HTTP server on 127.0.0.1 serves. */
static inline const char *tv_url(const char *name)
{
	static char url[4][1024];
	static int next = 0;
	const char *base = getenv("TV_URL");
	char *u = url[next++ % 4];
	snprintf(u, sizeof url[0], "%s/%s", base ? base : "http://127.0.0.1:8000", name);
	return u;
}

static inline void tv_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("WRONG: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	tv_failures++;
}

/* Reads a whole file into a NUL-terminated string (NULL if it cannot). */
static inline char *tv_slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if(!f) return NULL;
	size_t cap = 4096, len = 0;
	char *s = malloc(cap);
	size_t n;
	while(s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if(cap - len < 2) {
			cap *= 2;
			s = realloc(s, cap);
		}
	}
	fclose(f);
	if(s) s[len] = 0;
	return s;
}

static inline long tv_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static inline int tv_finish(const char *name)
{
	if(tv_failures) {
		printf("RESULT %s: %d wrong\n", name, tv_failures);
		return 1;
	}
	printf("RESULT %s: OK\n", name);
	return 0;
}

#endif
