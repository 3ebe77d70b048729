/*
 * munmap in phases (munmap.c): the zap runs under the read lock and lets a
 * queued writer in between PTE tables, keeping the detached range reserved.
 *
 * The tests catch a munmap (or a brk or mremap shrink) in that window
 * deterministically: the main thread queues for the write lock while the
 * zap runs, so the zap drops the lock for it, and the main thread then holds
 * the write lock with the range still reserved. Other threads queued while
 * it holds the lock run in a known order after it lets go, because the lock
 * is fair: the zap takes the lock back, finishes one more table, and lets
 * the next writer in.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <cmocka.h>
#include <urcu.h>
#include "mm/mmap.h"
#include "mm/munmap.h"
#include "mm/pgtable.h"
#include "mm/vma.h"

#define MIB (1ul << 20)
#define REGION (16 * MIB)      /* 8 PTE tables: enough for the zap to be caught mid-way */
#define REGION_ADDR (1ul << 40)

struct fixture {
	struct sm_machine *m;
	struct sm_mm *mm;
	struct sm_cpu *cpu;
};

static void setup(struct fixture *f, unsigned flags)
{
	struct sm_config cfg = { .ram_bytes = 512 * MIB, .max_cpus = 8,
				 .flags = SM_CFG_POISON_FREED | flags };

	f->m = sm_machine_create(&cfg);
	assert_non_null(f->m);
	f->mm = sm_mm_create(f->m);
	assert_non_null(f->mm);
	f->cpu = sm_cpu_create(f->m);
	assert_non_null(f->cpu);
	sm_cpu_switch_mm(f->cpu, f->mm);
}

static void teardown(struct fixture *f)
{
	sm_cpu_switch_mm(f->cpu, NULL);
	sm_cpu_destroy(f->cpu);
	sm_mm_destroy(f->mm);
	sm_machine_destroy(f->m);
}

static void fill(struct fixture *f, unsigned long a, unsigned long len, uint64_t tag)
{
	for (unsigned long off = 0; off < len; off += PAGE_SIZE) {
		uint64_t v = tag ^ off;

		assert_int_equal(sm_write(f->cpu, a + off, &v, sizeof(v)), 0);
	}
}

static void map_fill(struct fixture *f, unsigned long a, unsigned long len, uint64_t tag)
{
	assert_int_equal(sm_mmap(f->mm, a, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), (long)a);
	fill(f, a, len, tag);
}

static uint64_t drops(struct sm_machine *m)
{
	struct sm_machine_stats st;

	sm_machine_stats(m, &st);
	return st.munmap_lock_drops;
}

static uint64_t reserve_waits(struct sm_machine *m)
{
	struct sm_machine_stats st;

	sm_machine_stats(m, &st);
	return st.munmap_reserve_waits;
}

/* Threads queued on the rwsem (its internals: a test may look). */
static int queued(struct rwsem *s)
{
	struct list_head *p;
	int n = 0;

	pthread_mutex_lock(&s->wait_lock);
	for (p = s->wait_list.next; p != &s->wait_list; p = p->next)
		n++;
	pthread_mutex_unlock(&s->wait_lock);
	return n;
}

static void wait_queued(struct rwsem *s, int n)
{
	while (queued(s) < n)
		sched_yield();
}

static bool reserved_any(struct sm_mm *mm)
{
	bool any;

	pthread_mutex_lock(&mm->munmap_reserved.lock);
	any = gt_first(&mm->munmap_reserved.vmas) != NULL;
	pthread_mutex_unlock(&mm->munmap_reserved.lock);
	return any;
}

/* ---- the shrinking call under test, on its own thread ---- */

enum shrink_kind { SHRINK_MUNMAP, SHRINK_BRK, SHRINK_MREMAP };

struct shrink {
	struct fixture *f;
	enum shrink_kind kind;
	unsigned long addr, len, keep;   /* [addr+keep, addr+len) goes */
	long ret;
	int done;                        /* atomic: ret is set */
};

static void *shrink_thread(void *arg)
{
	struct shrink *s = arg;

	switch (s->kind) {
	case SHRINK_MUNMAP:
		s->ret = sm_munmap(s->f->mm, s->addr + s->keep, s->len - s->keep);
		break;
	case SHRINK_BRK:
		s->ret = sm_brk(s->f->mm, s->addr + s->keep);
		break;
	case SHRINK_MREMAP:
		s->ret = sm_mremap(s->f->mm, s->addr, s->len, s->keep, 0, 0);
		break;
	}
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Start s on a thread and return holding the mmap_lock for writing while
 * its zap has let go of it, the range reserved, half of it or more still
 * to zap. Populates [addr, addr+len)
 * with prepare() first; repeats if the call ends before we get in (it was in
 * its last table).
 */
static void catch_in_flight(struct shrink *s, pthread_t *th, void (*prepare)(struct shrink *))
{
	struct sm_mm *mm = s->f->mm;

	for (int tries = 1;; tries++) {
		uint64_t before;

		prepare(s);
		before = drops(s->f->m);
		assert_int_equal(pthread_create(th, NULL, shrink_thread, s), 0);
		while (!reserved_any(mm) && !__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
			sched_yield();
		down_write(&mm->mmap_lock);
		/* Early enough that several tables are left: the tests count
		 * on the zap going on through a few more hand-overs. */
		if (gt_first(&mm->munmap_reserved.vmas) &&
		    get_mm_counter(mm, MM_ANONPAGES) >= (long)(s->len / 2 / PAGE_SIZE)) {
			assert_true(drops(s->f->m) > before);
			if (tries > 1)
				print_message("caught the zap in flight at try %d\n", tries);
			return;
		}
		up_write(&mm->mmap_lock);
		pthread_join(*th, NULL);
	}
}

static void prepare_munmap(struct shrink *s)
{
	s->ret = 0;
	s->done = 0;
	map_fill(s->f, s->addr, s->len, 0x1111);
}

static void prepare_mremap(struct shrink *s)
{
	assert_int_equal(sm_munmap(s->f->mm, s->addr, s->len), 0);
	prepare_munmap(s);
}

/* ---- a thread that calls something while the shrink is in flight ---- */

struct call {
	struct fixture *f;
	long (*fn)(struct call *);
	unsigned long addr, len;
	long ret, ret2;
	pthread_t th;
};

static void *call_thread(void *arg)
{
	struct call *c = arg;

	c->ret = c->fn(c);
	return NULL;
}

static void call_start(struct call *c)
{
	assert_int_equal(pthread_create(&c->th, NULL, call_thread, c), 0);
}

static long call_map_fixed(struct call *c)
{
	return sm_mmap(c->f->mm, c->addr, c->len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

static long call_check(struct call *c)
{
	return sm_mm_check(c->f->mm);
}

/* Reads addr, and into ret2 the word at addr + len (0 on -EFAULT). */
static long call_read(struct call *c)
{
	struct sm_cpu *cpu = sm_cpu_create(c->f->m);
	uint64_t v = 0, w = 0;
	long ret;

	assert_non_null(cpu);
	sm_cpu_switch_mm(cpu, c->f->mm);
	ret = sm_read(cpu, c->addr, &v, sizeof(v));
	if (sm_read(cpu, c->addr + c->len, &w, sizeof(w)))
		w = 0;
	c->ret2 = (long)w;
	sm_cpu_switch_mm(cpu, NULL);
	sm_cpu_destroy(cpu);
	return ret ? ret : (long)v;
}

/* ---- tests ---- */

/* While the zap is out of the lock: no VMA (faults get -EFAULT), placement
 * skips the range, the checker accounts its PTEs, and a MAP_FIXED there
 * waits for the munmap and then maps fresh memory. */
static void test_reserved_window(void **state)
{
	struct fixture f;
	struct shrink s = { .f = &f, .kind = SHRINK_MUNMAP, .addr = REGION_ADDR, .len = REGION, .keep = 0 };
	struct call check = { .f = &f, .fn = call_check };
	/* The first page was zapped before we got in: its PTE is gone, so an
	 * access faults and finds no VMA. The last one is not yet zapped: an
	 * access may still see its data through the PTE, or fault. */
	struct call fault = { .f = &f, .fn = call_read, .addr = REGION_ADDR,
			      .len = REGION - PAGE_SIZE };
	struct call fixed = { .f = &f, .fn = call_map_fixed, .addr = REGION_ADDR, .len = REGION };
	unsigned long a;
	uint64_t waits;
	pthread_t th;

	(void)state;
	setup(&f, 0);
	/* Neighbours on both sides share the upper tables with the range. */
	map_fill(&f, REGION_ADDR - 2 * MIB, 2 * MIB, 0x2222);
	map_fill(&f, REGION_ADDR + REGION, 2 * MIB, 0x3333);
	catch_in_flight(&s, &th, prepare_munmap);

	assert_null(vma_lookup(f.mm, REGION_ADDR));
	assert_non_null(munmap_reserved_intersection(f.mm, REGION_ADDR, REGION_ADDR + PAGE_SIZE));
	assert_non_null(munmap_detached_vma(f.mm, REGION_ADDR + REGION - PAGE_SIZE));
	a = get_unmapped_area(f.mm, REGION_ADDR, REGION, 0);
	assert_true(a + REGION <= REGION_ADDR || a >= REGION_ADDR + REGION);
	a = get_unmapped_area(f.mm, REGION_ADDR + MIB, PAGE_SIZE, 0);
	assert_true(a < REGION_ADDR || a >= REGION_ADDR + REGION);

	/* Queue: the zap (reader), then the checker, a reader, MAP_FIXED. */
	waits = reserve_waits(f.m);
	call_start(&check);
	wait_queued(&f.mm->mmap_lock, 2);
	call_start(&fault);
	wait_queued(&f.mm->mmap_lock, 3);
	call_start(&fixed);
	wait_queued(&f.mm->mmap_lock, 4);
	up_write(&f.mm->mmap_lock);

	pthread_join(check.th, NULL);
	assert_int_equal(check.ret, 0);
	pthread_join(fault.th, NULL);
	assert_int_equal(fault.ret, -EFAULT);
	assert_true(fault.ret2 == 0 || fault.ret2 == (long)(0x1111 ^ (REGION - PAGE_SIZE)));
	pthread_join(th, NULL);
	assert_int_equal(s.ret, 0);
	pthread_join(fixed.th, NULL);
	assert_int_equal(fixed.ret, (long)REGION_ADDR);
	assert_int_equal(reserve_waits(f.m), waits + 1);

	/* The new mapping is fresh; the neighbours kept their data. */
	for (unsigned long off = 0; off < REGION; off += 4 * MIB) {
		uint64_t v = 1;

		assert_int_equal(sm_read(f.cpu, REGION_ADDR + off, &v, sizeof(v)), 0);
		assert_int_equal(v, 0);
	}
	for (unsigned long off = 0; off < 2 * MIB; off += PAGE_SIZE) {
		uint64_t v = 0;

		assert_int_equal(sm_read(f.cpu, REGION_ADDR - 2 * MIB + off, &v, sizeof(v)), 0);
		assert_int_equal(v, 0x2222 ^ off);
		assert_int_equal(sm_read(f.cpu, REGION_ADDR + REGION + off, &v, sizeof(v)), 0);
		assert_int_equal(v, 0x3333 ^ off);
	}
	assert_int_equal(sm_mm_check(f.mm), 0);
	/* Everything gone: every table goes with it. */
	assert_int_equal(sm_munmap(f.mm, REGION_ADDR - 2 * MIB, REGION + 4 * MIB), 0);
	assert_int_equal(mm_pgtable_pages(f.mm), 0);
	assert_int_equal(sm_mm_check(f.mm), 0);
	teardown(&f);
}

/* Two neighbouring munmaps, both out of the lock at once: each bounds its
 * page-table freeing by the other, and the second to finish frees what
 * they shared. */
static void test_neighbours_in_flight(void **state)
{
	struct fixture f;
	struct shrink lo = { .f = &f, .kind = SHRINK_MUNMAP, .addr = REGION_ADDR, .len = REGION, .keep = 0 };
	struct shrink hi = { .f = &f, .kind = SHRINK_MUNMAP, .addr = REGION_ADDR + REGION, .len = REGION, .keep = 0 };
	pthread_t th_lo, th_hi;

	(void)state;
	setup(&f, 0);
	map_fill(&f, REGION_ADDR + REGION, REGION, 0x4444);
	catch_in_flight(&lo, &th_lo, prepare_munmap);
	/* hi's detach needs the write lock: start it, then let both run. */
	assert_int_equal(pthread_create(&th_hi, NULL, shrink_thread, &hi), 0);
	wait_queued(&f.mm->mmap_lock, 2);
	up_write(&f.mm->mmap_lock);
	pthread_join(th_lo, NULL);
	pthread_join(th_hi, NULL);
	assert_int_equal(lo.ret, 0);
	assert_int_equal(hi.ret, 0);
	assert_int_equal(mm_pgtable_pages(f.mm), 0);
	assert_int_equal(sm_mm_check(f.mm), 0);
	teardown(&f);
}

#define HEAP_BASE (1ul << 38)

static void prepare_brk(struct shrink *s)
{
	s->ret = 0;
	s->done = 0;
	assert_int_equal(sm_brk(s->f->mm, s->addr + s->len), (long)(s->addr + s->len));
	fill(s->f, s->addr, s->len, 0x5555);
}

/* brk shrinks in the same phases; growing back into the range waits. */
static void test_brk_shrink(void **state)
{
	struct fixture f;
	struct shrink s = { .f = &f, .kind = SHRINK_BRK, .addr = HEAP_BASE, .len = REGION, .keep = 2 * MIB };
	pthread_t th;
	long grow;

	(void)state;
	setup(&f, 0);
	assert_int_equal(sm_mm_set_brk_base(f.mm, HEAP_BASE), 0);
	catch_in_flight(&s, &th, prepare_brk);
	assert_int_equal(f.mm->brk, HEAP_BASE + 2 * MIB);
	assert_non_null(munmap_detached_vma(f.mm, HEAP_BASE + 2 * MIB));
	up_write(&f.mm->mmap_lock);
	/* Possibly still in flight: this brk waits for it if so. */
	grow = sm_brk(f.mm, HEAP_BASE + REGION);
	pthread_join(th, NULL);
	assert_int_equal(s.ret, (long)(HEAP_BASE + 2 * MIB));
	assert_int_equal(grow, (long)(HEAP_BASE + REGION));
	for (unsigned long off = 0; off < REGION; off += MIB) {
		uint64_t v = 1;

		assert_int_equal(sm_read(f.cpu, HEAP_BASE + off, &v, sizeof(v)), 0);
		assert_int_equal(v, off < 2 * MIB ? (0x5555 ^ off) : 0);
	}
	assert_int_equal(sm_mm_check(f.mm), 0);
	teardown(&f);
}

/* mremap shrinks in the same phases; growing in place into the range waits. */
static void test_mremap_shrink(void **state)
{
	struct fixture f;
	struct shrink s = { .f = &f, .kind = SHRINK_MREMAP, .addr = REGION_ADDR, .len = REGION, .keep = 2 * MIB };
	pthread_t th;
	uint64_t waits;
	long ret;

	(void)state;
	setup(&f, 0);
	map_fill(&f, REGION_ADDR, REGION, 0x1111);
	catch_in_flight(&s, &th, prepare_mremap);
	assert_non_null(vma_lookup(f.mm, REGION_ADDR));
	assert_null(vma_lookup(f.mm, REGION_ADDR + 2 * MIB));
	/* Queue a grow-in-place (no MREMAP_MAYMOVE) behind the zap. */
	waits = reserve_waits(f.m);
	up_write(&f.mm->mmap_lock);
	ret = sm_mremap(f.mm, REGION_ADDR, 2 * MIB, REGION, 0, 0);
	pthread_join(th, NULL);
	assert_int_equal(s.ret, (long)REGION_ADDR);
	assert_int_equal(ret, (long)REGION_ADDR);
	assert_true(reserve_waits(f.m) >= waits);
	assert_int_equal(sm_mm_check(f.mm), 0);
	assert_int_equal(sm_munmap(f.mm, REGION_ADDR, REGION), 0);
	assert_int_equal(mm_pgtable_pages(f.mm), 0);
	teardown(&f);
}

struct hammer {
	struct fixture *f;
	int stop;   /* atomic */
	long calls;
};

/* A writer that keeps queueing: mmap and munmap of one page. */
static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		long a = sm_mmap(h->f->mm, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert_true(a > 0);
		assert_int_equal(sm_munmap(h->f->mm, (unsigned long)a, PAGE_SIZE), 0);
		h->calls++;
	}
	return NULL;
}

/* Beyond 1 GiB the tables wholly inside the VMA go first, a gigabyte at a
 * time with writers let in; the edges, shared with the neighbours, after. */
static void test_big_sparse(void **state)
{
	const unsigned long start = REGION_ADDR + 512 * MIB, len = 3ul << 30;
	struct fixture f;
	struct hammer h = { .f = &f };
	pthread_t th;

	(void)state;
	setup(&f, 0);
	map_fill(&f, start - 2 * MIB, 2 * MIB, 0x6666);
	map_fill(&f, start + len, 2 * MIB, 0x7777);
	assert_int_equal(sm_mmap(f.mm, start, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0),
			 (long)start);
	for (unsigned long off = 0; off < len; off += 2 * MIB)
		assert_int_equal(sm_write(f.cpu, start + off, &off, sizeof(off)), 0);
	assert_int_equal(pthread_create(&th, NULL, hammer_thread, &h), 0);
	assert_int_equal(sm_munmap(f.mm, start, len), 0);
	__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	print_message("%ld mmap+munmap calls meanwhile, %lu lock hand-overs\n", h.calls,
		      (unsigned long)drops(f.m));
	/* Left: the PUD table, the two PMD tables and two PTE tables of the
	 * neighbours. */
	assert_int_equal(mm_pgtable_pages(f.mm), 5);
	assert_int_equal(sm_mm_check(f.mm), 0);
	assert_int_equal(sm_munmap(f.mm, start - 2 * MIB, 2 * MIB), 0);
	assert_int_equal(sm_munmap(f.mm, start + len, 2 * MIB), 0);
	assert_int_equal(mm_pgtable_pages(f.mm), 0);
	teardown(&f);
}

/* SM_CFG_MUNMAP_ZAP_WRITE_LOCKED: the whole munmap holds the write lock, so
 * a queued writer waits for all of it and nothing is reserved. */
static void test_write_locked_knob(void **state)
{
	struct fixture f;
	struct shrink s = { .f = &f, .kind = SHRINK_MUNMAP, .addr = REGION_ADDR, .len = REGION, .keep = 0 };
	pthread_t th;

	(void)state;
	setup(&f, SM_CFG_MUNMAP_ZAP_WRITE_LOCKED);
	prepare_munmap(&s);
	assert_int_equal(pthread_create(&th, NULL, shrink_thread, &s), 0);
	while (!rwsem_is_write_locked(&f.mm->mmap_lock) && !__atomic_load_n(&s.done, __ATOMIC_ACQUIRE))
		sched_yield();
	down_write(&f.mm->mmap_lock);
	assert_null(gt_first(&f.mm->munmap_reserved.vmas));
	up_write(&f.mm->mmap_lock);
	pthread_join(th, NULL);
	assert_int_equal(s.ret, 0);
	assert_int_equal(drops(f.m), 0);
	assert_int_equal(mm_pgtable_pages(f.mm), 0);
	assert_int_equal(sm_mm_check(f.mm), 0);
	teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserved_window),
		cmocka_unit_test(test_neighbours_in_flight),
		cmocka_unit_test(test_brk_shrink),
		cmocka_unit_test(test_mremap_shrink),
		cmocka_unit_test(test_big_sparse),
		cmocka_unit_test(test_write_locked_knob),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
