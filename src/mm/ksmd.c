/*
 * ksmd: the scan. A cursor walks the registered mms (their slots), the
 * mergeable VMAs of each and every page they map, keeping one rmap item per
 * anonymous page it meets, in address order. For each page:
 *
 *   1. already the KSM page its item is on: nothing to do;
 *   2. the stable tree has a KSM page with the same contents: map that one;
 *   3. the page changed since the last scan (xxhash checksum): skip it, it
 *      is volatile;
 *   4. zero-filled, with use_zero_pages: map the shared zero page;
 *   5. the unstable tree has a page with the same contents: this page
 *      becomes a KSM page in place, the other is mapped to it, and a stable
 *      node for it enters the stable tree; otherwise the page enters the
 *      unstable tree.
 *
 * At the end of a full scan the unstable tree starts again from empty, and
 * KSM pages that nothing maps any more are given back.
 *
 * Locking: ksm->mutex over a batch of pages; each mm's mmap_lock for
 * reading only while its pages are looked up or changed, never while
 * another tree page's mm is being read.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include "base/rcu.h"
#include "mm/ksm.h"
#include "mm/folio.h"
#include "mm/memory.h"
#include "mm/pgtable.h"
#include "mm/vma.h"

/* ---- the cursor ---- */

static struct ksm_rmap_item *get_next_rmap_item(struct ksm *k, struct ksm_mm_slot *slot,
						unsigned long addr)
{
	struct ksm_rmap_item *item;

	while ((item = *k->cur_rmap)) {
		if (item->address == addr) {
			k->cur_rmap = &item->next;
			return item;
		}
		if (item->address > addr)
			break;
		/* Its page went away since the last scan. */
		*k->cur_rmap = item->next;
		free_rmap_item(k, item);
	}
	item = calloc(1, sizeof(*item));
	if (!item)
		return NULL;
	item->slot = slot;
	item->address = addr;
	item->next = *k->cur_rmap;
	*k->cur_rmap = item;
	k->cur_rmap = &item->next;
	ksm_count(&k->rmap_items, 1);
	__atomic_fetch_add(&slot->mm->ksm_rmap_items, 1, __ATOMIC_RELAXED);
	return item;
}

static void remove_trailing_rmap_items(struct ksm *k, struct ksm_rmap_item **link)
{
	struct ksm_rmap_item *item;

	while ((item = *link)) {
		*link = item->next;
		free_rmap_item(k, item);
	}
}

static void scan_start_slot(struct ksm *k, struct ksm_mm_slot *slot)
{
	k->cur_slot = slot;
	k->cur_address = 0;
	k->cur_rmap = &slot->rmap_list;
}

/* The next mergeable anonymous page of the slot, with a reference, and its
 * rmap item; NULL at the end of the mm. */
static struct page *scan_slot(struct ksm *k, struct ksm_mm_slot *slot, struct ksm_rmap_item **itemp)
{
	struct sm_mm *mm = slot->mm;
	struct vm_area_struct *vma;
	struct page *page = NULL;

	down_read(&mm->mmap_lock);
	for (vma = find_vma(mm, k->cur_address); vma; vma = vma_next(vma)) {
		unsigned long addr = max(k->cur_address, vma->vm_start);
		pte_t *pmdp;

		if (!ksm_vma_mergeable(vma) || !vma->anon_vma)
			continue;
		while (addr < vma->vm_end && (pmdp = pmd_next_table(mm, &addr, vma->vm_end))) {
			unsigned long next = pmd_addr_end(addr, vma->vm_end);

			for (; addr < next; addr += PAGE_SIZE) {
				page = ksm_follow_anon_page(vma, addr);
				if (!page)
					continue;
				*itemp = get_next_rmap_item(k, slot, addr);
				k->cur_address = addr + PAGE_SIZE;
				if (!*itemp) {
					ksm_put_page(mm->machine, page);
					page = NULL;
				}
				goto out;
			}
		}
		k->cur_address = vma->vm_end;
	}
	k->cur_address = mm->task_size;
out:
	up_read(&mm->mmap_lock);
	return page;
}

/* The next page to look at, or NULL when a full scan ended (or there is
 * nothing to scan). */
static struct page *scan_get_next_rmap_item(struct ksm *k, struct sm_machine *m,
					    struct ksm_rmap_item **itemp)
{
	struct ksm_mm_slot *slot = k->cur_slot;
	struct list_head *next;
	struct page *page;

	if (!slot) {
		spin_lock(&k->mmlist_lock);
		slot = list_empty(&k->mm_slots) ? NULL
						 : list_first_entry(&k->mm_slots, struct ksm_mm_slot, link);
		spin_unlock(&k->mmlist_lock);
		if (!slot)
			return NULL;
		scan_start_slot(k, slot);
	}
	for (;;) {
		if (k->cur_address < slot->mm->task_size) {
			page = scan_slot(k, slot, itemp);
			if (page)
				return page;
		}
		remove_trailing_rmap_items(k, k->cur_rmap);
		spin_lock(&k->mmlist_lock);
		next = slot->link.next;
		spin_unlock(&k->mmlist_lock);
		if (next == &k->mm_slots)
			break;
		slot = list_entry(next, struct ksm_mm_slot, link);
		scan_start_slot(k, slot);
	}
	k->cur_slot = NULL;
	k->seqnr++;
	k->unstable_tree = RB_ROOT;
	__atomic_fetch_add(&k->full_scans, 1, __ATOMIC_RELAXED);
	stable_tree_prune(k, m);
	return NULL;
}

/* ---- one page ---- */

/* The VMA at addr if ksmd may merge there, with mm's mmap_lock held for
 * reading; NULL, and no lock held, if not. */
static struct vm_area_struct *lock_mergeable_vma(struct sm_mm *mm, unsigned long addr)
{
	struct vm_area_struct *vma;

	down_read(&mm->mmap_lock);
	vma = vma_lookup(mm, addr);
	if (vma && ksm_vma_mergeable(vma) && vma->anon_vma)
		return vma;
	up_read(&mm->mmap_lock);
	return NULL;
}

/* Merge item's page into kpage, or (kpage NULL) make it node's KSM page;
 * on success the item joins the node. */
static int try_to_merge_with_ksm_page(struct ksm *k, struct ksm_rmap_item *item, struct page *page,
				      struct page *kpage, struct ksm_stable_node *node)
{
	struct sm_mm *mm = item->slot->mm;
	struct vm_area_struct *vma = lock_mergeable_vma(mm, item->address);
	int err;

	if (!vma)
		return -EFAULT;
	err = kpage == page ? 0 : try_to_merge_one_page(vma, item->address, page, kpage, node);
	if (!err) {
		remove_rmap_item_from_tree(k, item);
		stable_tree_append(k, item, kpage ? folio_stable_node(kpage) : node, vma->anon_vma);
	}
	up_read(&mm->mmap_lock);
	return err;
}

/* Consumes the reference on tree_page. */
static void try_to_merge_two_pages(struct ksm *k, struct sm_machine *m, struct ksm_rmap_item *item,
				   struct page *page, struct ksm_rmap_item *tree_item,
				   struct page *tree_page)
{
	struct ksm_stable_node *node = calloc(1, sizeof(*node));

	/* Two pages of one large folio (a zero-filled THP, say): splitting it
	 * for the first must find only that page's reference on the folio. */
	if (page_head(m, page) == page_head(m, tree_page)) {
		ksm_put_page(m, tree_page);
		tree_page = NULL;
	}
	if (!node)
		goto out;
	INIT_LIST_HEAD(&node->hlist);
	if (try_to_merge_with_ksm_page(k, item, page, NULL, node)) {
		free(node);
		goto out;
	}
	stable_tree_insert(k, m, node, page);
	if (!tree_page)
		tree_page = get_mergeable_page(tree_item);
	/* Should the other page have changed meanwhile, this one stays a KSM
	 * page of one mapping, for a later page to merge with (Linux would
	 * unmerge it again). */
	if (tree_page)
		try_to_merge_with_ksm_page(k, tree_item, tree_page, page, NULL);
out:
	if (tree_page)
		ksm_put_page(m, tree_page);
}

static int try_to_merge_with_zero(struct ksm_rmap_item *item, struct page *page)
{
	struct sm_mm *mm = item->slot->mm;
	struct vm_area_struct *vma = lock_mergeable_vma(mm, item->address);
	int err;

	if (!vma)
		return -EFAULT;
	err = try_to_merge_with_zero_page(vma, item->address, page);
	up_read(&mm->mmap_lock);
	return err;
}

static void cmp_and_merge_page(struct ksm *k, struct sm_machine *m, struct ksm_rmap_item *item,
			       struct page *page)
{
	struct ksm_rmap_item *tree_item;
	struct page *kpage, *tree_page;
	uint32_t checksum;

	if (folio_test_ksm(page) && item->state == RMAP_STABLE && item->head == folio_stable_node(page))
		return;
	kpage = stable_tree_search(k, m, page);
	remove_rmap_item_from_tree(k, item);
	if (kpage) {
		try_to_merge_with_ksm_page(k, item, page, kpage, NULL);
		folio_put_refs(m, kpage, 1);
		return;
	}
	if (folio_test_ksm(page))
		return;   /* a stale KSM page: the search erased its node */
	checksum = ksm_calc_checksum(m, page);
	if (item->oldchecksum != checksum) {
		item->oldchecksum = checksum;
		return;
	}
	if (__atomic_load_n(&k->use_zero_pages, __ATOMIC_RELAXED) && checksum == k->zero_checksum &&
	    !try_to_merge_with_zero(item, page))
		return;
	tree_item = unstable_tree_search_insert(k, m, item, page, &tree_page);
	if (tree_item)
		try_to_merge_two_pages(k, m, item, page, tree_item, tree_page);
}

long ksm_do_scan(struct ksm *k, struct sm_machine *m, unsigned long nr)
{
	long done = 0;

	while ((unsigned long)done < nr) {
		struct ksm_rmap_item *item;
		struct page *page = scan_get_next_rmap_item(k, m, &item);

		if (!page)
			break;
		cmp_and_merge_page(k, m, item, page);
		ksm_put_page(m, page);
		__atomic_fetch_add(&k->pages_scanned, 1, __ATOMIC_RELAXED);
		done++;
	}
	return done;
}

/* ---- the thread ---- */

static void *ksmd_main(void *arg)
{
	struct sm_machine *m = arg;
	struct ksm *k = m->ksm;

	sm_rcu_thread_online();
	pthread_mutex_lock(&k->mutex);
	while (!k->stop) {
		unsigned ms = k->sleep_millisecs;

		if (k->run != 1) {
			pthread_cond_wait(&k->wake, &k->mutex);
			continue;
		}
		ksm_do_scan(k, m, k->pages_to_scan);
		if (ms) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += (long)(ms % 1000) * 1000000;
			until.tv_sec += ms / 1000 + until.tv_nsec / 1000000000;
			until.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&k->wake, &k->mutex, &until);
		} else {
			/* Let exits and unmerges that wait for the mutex in. */
			pthread_mutex_unlock(&k->mutex);
			sched_yield();
			pthread_mutex_lock(&k->mutex);
		}
	}
	pthread_mutex_unlock(&k->mutex);
	return NULL;
}

int ksmd_start(struct ksm *k, struct sm_machine *m)
{
	int err;

	if (k->thread_running)
		return 0;
	k->stop = false;
	err = pthread_create(&k->thread, NULL, ksmd_main, m);
	if (err)
		return -err;
	k->thread_running = true;
	return 0;
}

void ksmd_stop(struct ksm *k)
{
	pthread_mutex_lock(&k->mutex);
	if (!k->thread_running) {
		pthread_mutex_unlock(&k->mutex);
		return;
	}
	k->stop = true;
	pthread_cond_signal(&k->wake);
	pthread_mutex_unlock(&k->mutex);
	pthread_join(k->thread, NULL);
	k->thread_running = false;
}
