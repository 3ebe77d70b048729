/* The one place an internal invariant failure ends the process. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "base/compiler.h"

void sm_panic(const char *file, int line, const char *func, const char *cond,
	      const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "softmm: %s:%d: %s: assertion '%s' failed: ", file, line, func, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
