/*
 * Comparing one step's records, host against softmm, and saying how they
 * differ: the results first, then the maps lines, then each VMA's smaps
 * fields, then the pages, then their pagemap bits. Each proc's records are
 * compared on their own; a proc other than 0 is named in the description.
 * Only the first kind of difference is described;
 * the lists of lines are printed whole because a split or a missed merge is
 * easiest to see that way.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "diff.h"

struct out {
	char *buf;
	size_t size, used;
};

static void say(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->used >= o->size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->size - o->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
}

static bool same_results(const struct diff_step *h, const struct diff_step *s,
			 const struct diff_op *op, const struct diff_layout *lay, struct out *o)
{
	char hr[64], sr[64];
	struct diff_op none = { .kind = OP_READ };

	if (!op)
		op = &none;
	if (h->ret != s->ret) {
		diff_ret_format(op, h->ret, lay, hr, sizeof(hr));
		diff_ret_format(op, s->ret, lay, sr, sizeof(sr));
		say(o, "  result: host %s, softmm %s\n", hr, sr);
		return false;
	}
	if (h->aux != s->aux) {
		diff_ret_format(op, h->aux, lay, hr, sizeof(hr));
		diff_ret_format(op, s->aux, lay, sr, sizeof(sr));
		say(o, "  moving a kernel-placed result back: host %s, softmm %s\n", hr, sr);
		return false;
	}
	if (h->data_hash != s->data_hash) {
		say(o, "  the bytes read differ\n");
		return false;
	}
	return true;
}

static void list_lines(const struct diff_step *st, const char *who, struct out *o)
{
	say(o, "    %s maps (%u):\n", who, st->nvma);
	for (unsigned i = 0; i < st->nvma; i++)
		say(o, "      %s\n", st->vma[i].line);
}

static bool same_maps(const struct diff_step *h, const struct diff_step *s, struct out *o)
{
	bool same = h->nvma == s->nvma;

	for (unsigned i = 0; same && i < h->nvma; i++)
		same = !strcmp(h->vma[i].line, s->vma[i].line);
	if (!same) {
		say(o, "  maps lines differ\n");
		list_lines(h, "host", o);
		list_lines(s, "softmm", o);
	}
	return same;
}

static bool same_smaps(const struct diff_step *h, const struct diff_step *s, struct out *o)
{
	for (unsigned i = 0; i < h->nvma; i++) {
		const struct diff_vma *hv = &h->vma[i], *sv = &s->vma[i];

		if (hv->rss_kb == sv->rss_kb && hv->anon_kb == sv->anon_kb &&
		    !strcmp(hv->vmflags, sv->vmflags))
			continue;
		say(o, "  smaps of %s\n", hv->line);
		say(o, "    host:   Rss %u kB, Anonymous %u kB, VmFlags: %s\n",
		    hv->rss_kb, hv->anon_kb, hv->vmflags);
		say(o, "    softmm: Rss %u kB, Anonymous %u kB, VmFlags: %s\n",
		    sv->rss_kb, sv->anon_kb, sv->vmflags);
		return false;
	}
	return true;
}

static unsigned record_pages(const struct diff_step *h, const struct diff_step *s)
{
	return h->big || s->big ? TOTAL_PAGES : WIN_PAGES + HEAP_PAGES;
}

static void page_name(unsigned i, char *buf, size_t size)
{
	if (i < WIN_PAGES)
		snprintf(buf, size, "W+%#lx", i * DIFF_PAGE);
	else if (i < WIN_PAGES + HEAP_PAGES)
		snprintf(buf, size, "H+%#lx", (i - WIN_PAGES) * DIFF_PAGE);
	else
		snprintf(buf, size, "B+%#lx", (i - WIN_PAGES - HEAP_PAGES) * DIFF_PAGE);
}

static const char *pm_state(uint8_t f, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s%s", f & PM_PRESENT_F ? "present" : "not present",
		 f & PM_EXCLUSIVE_F ? ", exclusive" : "", f & PM_FILE_F ? ", file/shared" : "",
		 f & PM_SWAP_F ? ", swapped" : "");
	return buf;
}

static bool same_pagemap(const struct diff_step *h, const struct diff_step *s, struct out *o)
{
	unsigned bad = 0, first = 0;
	char name[32], hs[64], ss[64];

	for (unsigned i = 0; i < record_pages(h, s); i++)
		if (h->pm[i] != s->pm[i] && !bad++)
			first = i;
	if (!bad)
		return true;
	page_name(first, name, sizeof(name));
	say(o, "  pagemap of %s: host %s, softmm %s (%u page%s differ%s)\n", name,
	    pm_state(h->pm[first], hs, sizeof(hs)), pm_state(s->pm[first], ss, sizeof(ss)),
	    bad, bad > 1 ? "s" : "", bad > 1 ? "" : "s");
	return false;
}

static const char *page_state(uint8_t flags, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", flags & PG_READABLE ? "readable" : "unreadable",
		 flags & PG_WRITABLE ? ", writable" : "");
	return buf;
}

static bool same_pages(const struct diff_step *h, const struct diff_step *s,
		       const struct diff_layout *lay, struct out *o)
{
	unsigned bad = 0, first = 0;
	char name[32], hs[40], ss[40];

	(void)lay;   /* the pages of an unused heap are zero on both sides */
	for (unsigned i = 0; i < record_pages(h, s); i++)
		if (h->page[i] != s->page[i] || h->hash[i] != s->hash[i])
			if (!bad++)
				first = i;
	if (!bad)
		return true;
	page_name(first, name, sizeof(name));
	if (h->page[first] != s->page[first])
		say(o, "  page %s: host %s, softmm %s", name,
		    page_state(h->page[first], hs, sizeof(hs)),
		    page_state(s->page[first], ss, sizeof(ss)));
	else
		say(o, "  page %s: contents differ", name);
	say(o, " (%u page%s differ%s)\n", bad, bad > 1 ? "s" : "", bad > 1 ? "" : "s");
	return false;
}

static const char *state_name(uint8_t state)
{
	return state == PS_NONE ? "no record" : state == PS_PEEK ? "a peek" : "a full record";
}

static bool compare_records(const struct diff_step *h, const struct diff_step *s,
			    const struct diff_op *op, const struct diff_layout *lay, struct out *o);

bool diff_compare_step(const struct diff_step *h, const struct diff_step *s,
		       const struct diff_op *op, const struct diff_layout *lay, unsigned proc,
		       char *why, size_t size)
{
	struct out o = { why, size, 0 };

	why[0] = 0;
	if (compare_records(h, s, op, lay, &o))
		return true;
	if (proc)
		say(&o, "  (in proc %u, a child)\n", proc);
	return false;
}

static bool compare_records(const struct diff_step *h, const struct diff_step *s,
			    const struct diff_op *op, const struct diff_layout *lay, struct out *o)
{
	if (h->state == PS_NONE && s->state == PS_NONE)
		return true;
	if (h->state != s->state || h->acted != s->acted) {
		say(o, "  records: host %s%s, softmm %s%s\n", state_name(h->state),
		    h->acted ? " (ran the op)" : "", state_name(s->state),
		    s->acted ? " (ran the op)" : "");
		return false;
	}
	if (h->problem[0] || s->problem[0]) {
		if (h->problem[0])
			say(o, "  host: %s\n", h->problem);
		if (s->problem[0])
			say(o, "  softmm: %s\n", s->problem);
		return false;
	}
	if (!same_results(h, s, op, lay, o))
		return false;
	if (h->state == PS_FULL && !(same_maps(h, s, o) && same_smaps(h, s, o)))
		return false;
	return same_pages(h, s, lay, o) && same_pagemap(h, s, o);
}

void diff_log_report(const char *kind, const char *name, const char *host_log, const char *sm_log)
{
	const char *a = host_log, *b = sm_log;
	unsigned line = 1;

	while (*a && *a == *b) {
		if (*a == '\n')
			line++;
		a++;
		b++;
	}
	while (a > host_log && a[-1] != '\n')
		a--, b--;
	printf("FAIL %s %s, line %u:\n  host:   %.*s\n  softmm: %.*s\n", kind, name, line,
	       (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
	printf("--- host log ---\n%s--- softmm log ---\n%s", host_log, sm_log);
}
