/*
 * sm_mm_check: the invariant checker. It takes the mmap_lock for writing
 * and walks everything the mm owns:
 *   - the VMA tree (ordering, gaps, map_count, page protections);
 *   - every page table: each counted once in VmPTE, each a PG_pgtable frame
 *     that is not free;
 *   - every leaf entry: inside a VMA that allows what the entry allows (or
 *     a VMA that a munmap in flight detached and is still zapping), its
 *     frame not free, refcount >= mapcount >= the PTEs that map it here
 *     (equal when this is the machine's only mm);
 *   - the RSS counters against the entries counted;
 *   - file mappings: each file VMA in its file's rmap at its page offsets,
 *     each PTE of a file VMA mapping that file's cached folio for that
 *     offset (or an anonymous copy), and every file's page cache: refcount
 *     = the cache's reference + one per mapping PTE (+ transient ones, so
 *     "at least" unless the mm is the machine's only one); every file
 *     folio mapped is its file's cached folio for its index (a hole punch
 *     takes folios out of the cache and unmaps them in one step for us:
 *     we hold the invalidate_lock of each file the mm maps, for reading).
 *   - KSM: a KSM page is mapped read-only and names a stable node that
 *     names it back; the stable tree holds one reference beyond its
 *     mappings; the mm's KSM counters (zero pages, rmap items, merging
 *     pages) match what is there. ksm->mutex is held too, so that ksmd
 *     holds no passing reference while we count.
 * It prints every violation and returns -EUCLEAN if there was one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "mm/memory.h"
#include "mm/munmap.h"
#include "mm/folio.h"
#include "mm/filemap.h"
#include "mm/ksm.h"
#include "mm/page_alloc.h"
#include "mm/pgtable.h"
#include "mm/rmap.h"
#include "mm/vma.h"

struct checker {
	struct sm_mm *mm;
	struct address_space **files;   /* mapped by the mm: invalidate_lock held */
	int nr_files;
	uint32_t *maps;          /* PTEs seen per pfn */
	long tables, anon, file, ksm_zero;
	int errors;
};

#define BAD(c, ...)                                                   \
	do {                                                          \
		if ((c)->errors++ < 20) {                             \
			fprintf(stderr, "sm_mm_check: " __VA_ARGS__); \
			fputc('\n', stderr);                          \
		}                                                     \
	} while (0)

static void check_vmas(struct checker *c)
{
	struct sm_mm *mm = c->mm;
	struct vm_area_struct *vma, *prev = NULL;
	int n = 0;

	if (gt_check(&mm->mm_mt))
		BAD(c, "VMA tree structure broken");
	for (vma = vma_first(mm); vma; prev = vma, vma = vma_next(vma)) {
		n++;
		if (vma->vm_start >= vma->vm_end || offset_in_page(vma->vm_start | vma->vm_end))
			BAD(c, "VMA %lx-%lx malformed", vma->vm_start, vma->vm_end);
		if (prev && prev->vm_end > vma->vm_start)
			BAD(c, "VMAs %lx-%lx and %lx-%lx overlap", prev->vm_start, prev->vm_end,
			    vma->vm_start, vma->vm_end);
		if (vma->vm_end > mm->task_size)
			BAD(c, "VMA %lx-%lx beyond TASK_SIZE", vma->vm_start, vma->vm_end);
		if (vma->vm_page_prot != vm_get_page_prot(vma->vm_flags))
			BAD(c, "VMA %lx-%lx page protection stale", vma->vm_start, vma->vm_end);
		if (vma->detached || vma->vm_mm != mm)
			BAD(c, "VMA %lx-%lx detached or foreign", vma->vm_start, vma->vm_end);
		if (vma->vm_file && (!vma->in_file_rmap || vma->shared_rb.start != vma->vm_pgoff ||
				     vma->shared_rb.last != vma->vm_pgoff + vma_pages(vma) - 1))
			BAD(c, "file VMA %lx-%lx not in its file's rmap at its offsets",
			    vma->vm_start, vma->vm_end);
	}
	if (n != mm->map_count)
		BAD(c, "map_count %d but %d VMAs", mm->map_count, n);
	for (struct gt_node *r = gt_first(&mm->munmap_reserved.vmas); r; r = gt_next(r))
		if (find_vma_intersection(mm, r->start, r->end))
			BAD(c, "VMA inside %lx-%lx, which a munmap is still zapping", r->start, r->end);
}

static void check_frame_in_use(struct checker *c, unsigned long pfn, const char *what)
{
	struct sm_machine *m = c->mm->machine;

	if (pfn == 0 || pfn >= m->ram.nr_frames) {
		BAD(c, "%s pfn %lu out of RAM", what, pfn);
		return;
	}
	if (page_is_free(m, pfn))
		BAD(c, "%s pfn %lu is also free", what, pfn);
}

static void check_leaf(struct checker *c, unsigned long addr, pte_t pte)
{
	struct sm_mm *mm = c->mm;
	struct vm_area_struct *vma = vma_lookup(mm, addr);
	unsigned long pfn = pte_pfn(pte);

	if (!vma)
		vma = munmap_detached_vma(mm, addr);
	struct page *page, *head;

	if (!vma) {
		BAD(c, "PTE %llx at %lx outside every VMA", (unsigned long long)pte, addr);
		return;
	}
	if (!pte_present(pte))
		return;   /* swap entries come with reclaim */
	if (pte_write(pte) && !(vma->vm_flags & VM_WRITE))
		BAD(c, "writable PTE at %lx in a VMA without VM_WRITE", addr);
	if (pte_hw_present(pte) && !(vma->vm_flags & VM_ACCESS_FLAGS))
		BAD(c, "present PTE at %lx in a PROT_NONE VMA", addr);
	if (pte_protnone(pte) && (vma->vm_flags & VM_ACCESS_FLAGS))
		BAD(c, "PROT_NONE PTE at %lx in an accessible VMA", addr);
	if (pte_special(pte)) {
		if (pfn != mm->machine->zero_pfn)
			BAD(c, "special PTE at %lx maps pfn %lu, not the zero page", addr, pfn);
		if (pte_write(pte))
			BAD(c, "zero page writable at %lx", addr);
		if (is_ksm_zero_pte(mm->machine, pte))
			c->ksm_zero++;
		return;
	}
	check_frame_in_use(c, pfn, "mapped");
	page = pfn_to_page(mm->machine, pfn);
	head = page_head(mm->machine, page);
	if (test_bit_flag(page, PG_pgtable) || test_bit_flag(page, PG_reserved))
		BAD(c, "PTE at %lx maps a page table or reserved frame %lu", addr, pfn);
	if (page_is_anon(head)) {
		unsigned long index = head->index + (unsigned long)(page - head);

		c->anon++;
		if (folio_test_ksm(head)) {
			if (pte_write(pte))
				BAD(c, "KSM page %lu writable at %lx", pfn, addr);
			if (folio_stable_node(head)->kpfn != pfn)
				BAD(c, "KSM page %lu at %lx: its stable node names pfn %lu", pfn, addr,
				    folio_stable_node(head)->kpfn);
			if (test_bit_flag(head, PG_anon_exclusive))
				BAD(c, "KSM page %lu at %lx marked exclusive", pfn, addr);
		} else if (!vma->anon_vma)
			BAD(c, "anon page at %lx in a VMA without anon_vma", addr);
		else if (index != linear_page_index(vma, addr))
			BAD(c, "anon page at %lx has index %lu, expected %lu", addr, index,
			    linear_page_index(vma, addr));
	} else {
		c->file++;
		if (head->mapping != vma->vm_file || !vma->vm_file)
			BAD(c, "PTE at %lx maps a folio of another file (or none)", addr);
		else if (head->index != linear_page_index(vma, addr))
			BAD(c, "file page at %lx has index %lu, expected %lu", addr, head->index,
			    linear_page_index(vma, addr));
		else if (!filemap_folio_cached(vma->vm_file, head))
			BAD(c, "file page %lu at %lx is not its file's cached folio (a punched hole?)",
			    pfn, addr);
	}
	c->maps[pfn]++;
}

static void check_table(struct checker *c, pte_t *t, int level, unsigned long base)
{
	static const unsigned shift[4] = { PAGE_SHIFT, PMD_SHIFT, PUD_SHIFT, PGDIR_SHIFT };
	struct sm_mm *mm = c->mm;

	for (unsigned i = 0; i < PTRS_PER_TABLE; i++) {
		unsigned long addr = base + ((unsigned long)i << shift[level]);
		pte_t e = ptep_get(&t[i]);

		if (!e)
			continue;
		if (level == 0) {
			check_leaf(c, addr, e);
			continue;
		}
		if ((e & _PAGE_TABLE) != _PAGE_TABLE || (e & _PAGE_PSE)) {
			BAD(c, "bad level-%d entry %llx at %lx", level, (unsigned long long)e, addr);
			continue;
		}
		check_frame_in_use(c, pte_pfn(e), "page table");
		if (!test_bit_flag(table_page(mm, e), PG_pgtable))
			BAD(c, "table at %lx lacks PG_pgtable", addr);
		c->tables++;
		check_table(c, table_of(mm, e), level - 1, addr);
	}
}

/* Sum of the page mapcounts of a folio; *here = PTEs of this mm mapping it. */
static int folio_mapcount_sum(struct sm_machine *m, struct page *head, const uint32_t *maps, int *here)
{
	unsigned long pfn = page_to_pfn(m, head);
	int sum = 0;

	*here = 0;
	for (unsigned long i = 0; i < folio_nr_pages(head); i++) {
		sum += page_mapcount(head + i);
		*here += (int)maps[pfn + i];
	}
	return sum;
}

static void check_counts(struct checker *c)
{
	struct sm_mm *mm = c->mm;
	struct sm_machine *m = mm->machine;
	bool alone = __atomic_load_n(&m->nr_mms, __ATOMIC_RELAXED) == 1;

	if (c->tables != mm_pgtable_pages(mm))
		BAD(c, "VmPTE counts %ld tables, found %ld", mm_pgtable_pages(mm), c->tables);
	if (c->anon != get_mm_counter(mm, MM_ANONPAGES))
		BAD(c, "RssAnon counter %ld, PTEs %ld", get_mm_counter(mm, MM_ANONPAGES), c->anon);
	if (c->file != get_mm_counter(mm, MM_FILEPAGES) + get_mm_counter(mm, MM_SHMEMPAGES))
		BAD(c, "RssFile+RssShmem counters disagree with %ld PTEs", c->file);
	for (unsigned long pfn = 0; pfn < m->ram.nr_frames; pfn++) {
		struct page *p;
		int mc, rc, tree_ref;

		if (!c->maps[pfn])
			continue;
		p = pfn_to_page(m, pfn);
		mc = page_mapcount(p);
		if (mc < (int)c->maps[pfn] || (alone && mc != (int)c->maps[pfn]))
			BAD(c, "pfn %lu: mapcount %d, mapped by %u PTEs here", pfn, mc, c->maps[pfn]);
		p = page_head(m, p);
		if (p != pfn_to_page(m, pfn))
			continue;   /* the folio is checked once, from its head */
		mc = folio_mapcount_sum(m, p, c->maps, &rc);
		/* Every PTE mapping a folio holds one of its references; the
		 * stable tree one more of a KSM page. */
		tree_ref = folio_test_ksm(p);
		if (page_ref_count(p) < mc + tree_ref)
			BAD(c, "folio %lu: refcount %d below its %d mappings", pfn, page_ref_count(p), mc);
		if (folio_order(p) && folio_large_mapcount(p) != mc)
			BAD(c, "folio %lu: large mapcount %d, page mapcounts sum to %d", pfn,
			    folio_large_mapcount(p), mc);
		if (alone && rc + tree_ref + page_in_cache(p) != page_ref_count(p))
			BAD(c, "folio %lu: refcount %d, mapped by %d PTEs of the only mm%s", pfn,
			    page_ref_count(p), rc, page_in_cache(p) ? " and the page cache" : "");
	}
}

static void bad_file(void *arg, const char *what)
{
	BAD((struct checker *)arg, "%s", what);
}

/* The machine's stable node chains: each chained node on the list its fill
 * says, each chain's count right, and the counters of both. */
static void check_ksm_chains(struct checker *c, struct ksm *k)
{
	long chains = 0, dups = 0;

	for (struct rb_node *n = rb_first(&k->stable_tree); n; n = rb_next(n)) {
		struct ksm_stable_node *node = container_of(n, struct ksm_stable_node, node);
		struct ksm_chain *chain = node->chain;
		struct ksm_stable_node *d;
		int open = 0, full = 0;
		bool found = false;

		if (!chain)
			continue;
		dups++;
		list_for_each_entry(d, &chain->open, dup) {
			open++;
			found |= d == node;
			if (d->rmap_hlist_len >= k->max_page_sharing)
				BAD(c, "KSM node %lu: full, on its chain's open list", d->kpfn);
		}
		list_for_each_entry(d, &chain->full, dup) {
			full++;
			found |= d == node;
			if (d->rmap_hlist_len < k->max_page_sharing)
				BAD(c, "KSM node %lu: room left, on its chain's full list", d->kpfn);
		}
		if (!found || open + full != chain->nr || chain->nr < 2)
			BAD(c, "KSM node %lu: chain of %d holds %d (it%s)", node->kpfn, chain->nr,
			    open + full, found ? "" : " not among them");
		/* Count each chain once, at its first node on the open list, or
		 * on the full one when none has room. */
		d = list_empty(&chain->open) ? list_first_entry(&chain->full, struct ksm_stable_node, dup)
					     : list_first_entry(&chain->open, struct ksm_stable_node, dup);
		chains += d == node;
	}
	if (chains != READ_ONCE(k->stable_node_chains) || dups != READ_ONCE(k->stable_node_dups))
		BAD(c, "stable_node_chains %ld, stable_node_dups %ld; counted %ld, %ld",
		    k->stable_node_chains, k->stable_node_dups, chains, dups);
}

/* The mm's KSM counters against its rmap items and PTEs. Precondition: ksm->mutex. */
static void check_ksm(struct checker *c)
{
	struct sm_mm *mm = c->mm;
	struct ksm_mm_slot *slot = mm->ksm_slot;
	long items = 0, merging = 0;

	if (c->ksm_zero != __atomic_load_n(&mm->ksm_zero_pages, __ATOMIC_RELAXED))
		BAD(c, "ksm_zero_pages %ld, KSM zero PTEs %ld", mm->ksm_zero_pages, c->ksm_zero);
	for (struct ksm_rmap_item *item = slot ? slot->rmap_list : NULL; item; item = item->next) {
		items++;
		if (item->next && item->next->address <= item->address)
			BAD(c, "KSM rmap items out of order at %lx", item->address);
		if (item->state != RMAP_STABLE)
			continue;
		merging++;
		if (item->head->rmap_hlist_len <= 0)
			BAD(c, "KSM rmap item %lx on a node with no items", item->address);
	}
	if (items != __atomic_load_n(&mm->ksm_rmap_items, __ATOMIC_RELAXED))
		BAD(c, "ksm_rmap_items %ld, items %ld", mm->ksm_rmap_items, items);
	if (merging != __atomic_load_n(&mm->ksm_merging_pages, __ATOMIC_RELAXED))
		BAD(c, "ksm_merging_pages %ld, stable items %ld", mm->ksm_merging_pages, merging);
	check_ksm_chains(c, mm->machine->ksm);
}

static void add_file(struct checker *c, struct address_space *as)
{
	for (int i = 0; i < c->nr_files; i++)
		if (c->files[i] == as)
			return;
	c->files[c->nr_files++] = as;
}

/* The invalidate_lock of every file the mm maps (its detached VMAs too),
 * so that no hole punch is halfway while we look. Taken after the
 * mmap_lock, as a fault takes them. false without memory for the list. */
static bool lock_files(struct checker *c)
{
	struct gt_node *reserved = gt_first(&c->mm->munmap_reserved.vmas);
	struct vm_area_struct *vma;
	size_t n = 1;

	for (vma = vma_first(c->mm); vma; vma = vma_next(vma))
		n += vma->vm_file != NULL;
	for (struct gt_node *r = reserved; r; r = gt_next(r))
		n += node_vma(r)->vm_file != NULL;
	c->files = malloc(n * sizeof(*c->files));
	if (!c->files)
		return false;
	for (vma = vma_first(c->mm); vma; vma = vma_next(vma))
		if (vma->vm_file)
			add_file(c, vma->vm_file);
	for (struct gt_node *r = reserved; r; r = gt_next(r))
		if (node_vma(r)->vm_file)
			add_file(c, node_vma(r)->vm_file);
	for (int i = 0; i < c->nr_files; i++)
		down_read(&c->files[i]->invalidate_lock);
	return true;
}

static void unlock_files(struct checker *c)
{
	for (int i = 0; i < c->nr_files; i++)
		up_read(&c->files[i]->invalidate_lock);
	free(c->files);
}

int sm_mm_check(struct sm_mm *mm)
{
	struct checker c = { .mm = mm };

	if (!mm)
		return -EINVAL;
	c.maps = calloc(mm->machine->ram.nr_frames, sizeof(*c.maps));
	if (!c.maps)
		return -ENOMEM;
	pthread_mutex_lock(&mm->machine->ksm->mutex);
	down_write(&mm->mmap_lock);
	if (!lock_files(&c)) {
		up_write(&mm->mmap_lock);
		pthread_mutex_unlock(&mm->machine->ksm->mutex);
		free(c.maps);
		return -ENOMEM;
	}
	check_vmas(&c);
	check_frame_in_use(&c, mm->pmap.pgd_pfn, "PGD");
	check_table(&c, mm->pmap.pgd, 3, 0);
	check_counts(&c);
	filemap_check(mm->machine, bad_file, &c);
	check_ksm(&c);
	unlock_files(&c);
	up_write(&mm->mmap_lock);
	pthread_mutex_unlock(&mm->machine->ksm->mutex);
	free(c.maps);
	return c.errors ? -EUCLEAN : 0;
}
