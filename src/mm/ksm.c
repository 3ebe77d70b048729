/*
 * KSM: who takes part, the knobs, the statistics, and unmerging.
 *
 * An mm takes part once one of its VMAs is MADV_MERGEABLE or it switched
 * merge-any on (Linux's prctl PR_SET_MEMORY_MERGE): it gets an mm slot on
 * ksmd's list, and keeps it until exit (ksm_exit), as Linux's MMF_VM_MERGEABLE.
 * A fork child of such an mm takes part too.
 *
 * The knobs and counters are those of /sys/kernel/mm/ksm; sm_ksm_scan runs
 * ksmd's scan synchronously on the caller's thread, for tests that want to
 * know when merging happened.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "mm/ksm.h"
#include "mm/folio.h"
#include "mm/mm_api.h"
#include "mm/vma.h"

#define KSM_DEFAULT_PAGES_TO_SCAN 100
#define KSM_DEFAULT_SLEEP_MS 20
#define KSM_DEFAULT_MAX_PAGE_SHARING 256
/*
 * general_profit and ksm_process_profit charge each rmap item at the size of
 * Linux's struct ksm_rmap_item on x86-64 (64 bytes), not ours (larger): the
 * figures are Linux's, so that a guest reads what its kernel would report
 * (tests/diff/ksm.c compares them with the host's).
 */
#define KSM_PROFIT_ITEM_BYTES 64

int ksm_init(struct sm_machine *m)
{
	struct ksm *k = calloc(1, sizeof(*k));
	struct page *zero = pfn_to_page(m, m->zero_pfn);

	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->mutex, NULL);
	pthread_cond_init(&k->wake, NULL);
	spin_lock_init(&k->mmlist_lock);
	INIT_LIST_HEAD(&k->mm_slots);
	k->stable_tree = RB_ROOT;
	k->unstable_tree = RB_ROOT;
	k->pages_to_scan = KSM_DEFAULT_PAGES_TO_SCAN;
	k->sleep_millisecs = KSM_DEFAULT_SLEEP_MS;
	k->max_page_sharing = KSM_DEFAULT_MAX_PAGE_SHARING;
	k->reuse = !(m->flags & SM_CFG_NO_KSM_REUSE);
	k->zero_checksum = ksm_calc_checksum(m, zero);
	m->ksm = k;
	return 0;
}

/* Every mm is gone: only nodes of pages nothing maps can be left. */
void ksm_destroy(struct sm_machine *m)
{
	struct ksm *k = m->ksm;

	if (!k)
		return;
	ksmd_stop(k);
	pthread_mutex_lock(&k->mutex);
	stable_tree_prune(k, m);
	pthread_mutex_unlock(&k->mutex);
	pthread_cond_destroy(&k->wake);
	pthread_mutex_destroy(&k->mutex);
	free(k);
	m->ksm = NULL;
}

/* ---- taking part ---- */

/* Linux's vma_ksm_compatible, for the flags softmm has. */
static bool vma_ksm_compatible(unsigned long vm_flags)
{
	return !(vm_flags & (VM_SHARED | VM_MAYSHARE | VM_DONTEXPAND));
}

bool ksm_vma_mergeable(const struct vm_area_struct *vma)
{
	return (vma->vm_flags & VM_MERGEABLE) ||
	       (READ_ONCE(vma->vm_mm->ksm_merge_any) && vma_ksm_compatible(vma->vm_flags));
}

unsigned long ksm_vma_flags(const struct sm_mm *mm, unsigned long vm_flags)
{
	if (READ_ONCE(mm->ksm_merge_any) && vma_ksm_compatible(vm_flags))
		vm_flags |= VM_MERGEABLE;
	return vm_flags;
}

/* Give mm a slot on ksmd's list. Any lock may be held but mmlist_lock. */
static int ksm_enter(struct sm_mm *mm)
{
	struct ksm *k = mm->machine->ksm;
	struct ksm_mm_slot *slot;

	if (READ_ONCE(mm->ksm_slot))
		return 0;
	slot = calloc(1, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	slot->mm = mm;
	spin_lock(&k->mmlist_lock);
	if (!mm->ksm_slot) {
		list_add_tail(&slot->link, &k->mm_slots);
		WRITE_ONCE(mm->ksm_slot, slot);
		slot = NULL;
	}
	spin_unlock(&k->mmlist_lock);
	free(slot);
	return 0;
}

int ksm_fork(struct sm_mm *child, struct sm_mm *parent)
{
	WRITE_ONCE(child->ksm_merge_any, READ_ONCE(parent->ksm_merge_any));
	return READ_ONCE(parent->ksm_slot) ? ksm_enter(child) : 0;
}

/* Drop the slot's rmap items (and the slot if `leave`). Preconditions:
 * ksm->mutex, the mm alive. */
static void ksm_forget_slot(struct ksm *k, struct ksm_mm_slot *slot, bool leave)
{
	struct ksm_rmap_item *item;

	if (k->cur_slot == slot) {
		/* Move the cursor on; the full scan completes without this mm. */
		struct list_head *next;

		spin_lock(&k->mmlist_lock);
		next = slot->link.next;
		spin_unlock(&k->mmlist_lock);
		if (!leave) {
			k->cur_rmap = &slot->rmap_list;
		} else if (next != &k->mm_slots) {
			k->cur_slot = list_entry(next, struct ksm_mm_slot, link);
			k->cur_address = 0;
			k->cur_rmap = &k->cur_slot->rmap_list;
		} else {
			k->cur_slot = NULL;
		}
	}
	while ((item = slot->rmap_list)) {
		slot->rmap_list = item->next;
		free_rmap_item(k, item);
	}
	if (!leave)
		return;
	spin_lock(&k->mmlist_lock);
	list_del(&slot->link);
	WRITE_ONCE(slot->mm->ksm_slot, NULL);
	spin_unlock(&k->mmlist_lock);
	free(slot);
}

void ksm_exit(struct sm_mm *mm)
{
	struct ksm *k = mm->machine->ksm;

	if (!READ_ONCE(mm->ksm_slot))
		return;
	pthread_mutex_lock(&k->mutex);
	ksm_forget_slot(k, mm->ksm_slot, true);
	/* The pages only this mm mapped are unmapped by now. */
	stable_tree_prune(k, mm->machine);
	pthread_mutex_unlock(&k->mutex);
}

long ksm_madvise(struct vm_area_struct *vma, unsigned long start, unsigned long end,
		 int advice, unsigned long *vm_flags)
{
	long err;

	if (advice == MADV_MERGEABLE) {
		if ((*vm_flags & VM_MERGEABLE) || !vma_ksm_compatible(*vm_flags))
			return 0;
		err = ksm_enter(vma->vm_mm);
		if (err)
			return err;
		*vm_flags |= VM_MERGEABLE;
		return 0;
	}
	if (!(*vm_flags & VM_MERGEABLE))
		return 0;
	err = unmerge_ksm_pages(vma, start, end);
	if (err)
		return err;
	*vm_flags &= ~VM_MERGEABLE;
	return 0;
}

long sm_mm_set_ksm_merge_any(struct sm_mm *mm, int enable)
{
	struct vm_area_struct *vma;
	long err = 0;

	if (!mm)
		return -EINVAL;
	mm_syscall_enter(mm);
	down_write(&mm->mmap_lock);
	if (enable) {
		err = ksm_enter(mm);
		if (!err) {
			WRITE_ONCE(mm->ksm_merge_any, true);
			for (vma = vma_first(mm); vma; vma = vma_next(vma))
				vma_set_flags(vma, ksm_vma_flags(mm, vma->vm_flags));
		}
	} else if (mm->ksm_merge_any) {
		/* As Linux: unmerge everything and clear VM_MERGEABLE everywhere. */
		WRITE_ONCE(mm->ksm_merge_any, false);
		for (vma = vma_first(mm); vma && !err; vma = vma_next(vma)) {
			err = unmerge_ksm_pages(vma, vma->vm_start, vma->vm_end);
			if (!err)
				vma_set_flags(vma, vma->vm_flags & ~VM_MERGEABLE);
		}
	}
	up_write(&mm->mmap_lock);
	mm_syscall_exit(mm);
	return err;
}

/* ---- run = 2 ---- */

/* The slot after `slot` (the first if NULL), or NULL: madvise may be
 * adding slots meanwhile. Precondition: ksm->mutex (no slot leaves). */
static struct ksm_mm_slot *next_slot(struct ksm *k, struct ksm_mm_slot *slot)
{
	struct list_head *next;

	spin_lock(&k->mmlist_lock);
	next = slot ? slot->link.next : k->mm_slots.next;
	spin_unlock(&k->mmlist_lock);
	return next == &k->mm_slots ? NULL : list_entry(next, struct ksm_mm_slot, link);
}

static long unmerge_and_remove_all_rmap_items(struct ksm *k, struct sm_machine *m)
{
	struct ksm_mm_slot *slot;
	long err = 0;

	for (slot = next_slot(k, NULL); slot; slot = next_slot(k, slot)) {
		struct sm_mm *mm = slot->mm;
		struct vm_area_struct *vma;

		down_read(&mm->mmap_lock);
		for (vma = vma_first(mm); vma && !err; vma = vma_next(vma))
			if (ksm_vma_mergeable(vma))
				err = unmerge_ksm_pages(vma, vma->vm_start, vma->vm_end);
		up_read(&mm->mmap_lock);
		ksm_forget_slot(k, slot, false);
		if (err)
			break;
	}
	k->cur_slot = NULL;
	stable_tree_prune(k, m);
	return err;
}

/* ---- the knobs and the counters ---- */

void sm_ksm_config(struct sm_machine *m, struct sm_ksm_config *cfg)
{
	struct ksm *k = m->ksm;

	cfg->run = READ_ONCE(k->run);
	cfg->pages_to_scan = READ_ONCE(k->pages_to_scan);
	cfg->sleep_millisecs = READ_ONCE(k->sleep_millisecs);
	cfg->use_zero_pages = READ_ONCE(k->use_zero_pages);
	cfg->max_page_sharing = (unsigned)READ_ONCE(k->max_page_sharing);
}

/* As Linux: the limit changes only when no page is merged, for the pages
 * already merged were filled to the old one. Precondition: ksm->mutex. */
static int set_max_page_sharing(struct ksm *k, struct sm_machine *m, unsigned v)
{
	if (!v || v == (unsigned)k->max_page_sharing)
		return 0;
	if (READ_ONCE(k->pages_shared))
		return -EBUSY;
	stable_tree_prune(k, m);
	if (READ_ONCE(k->stable_nodes))
		return -EBUSY;   /* pages still mapped, by forks that have no rmap items yet */
	WRITE_ONCE(k->max_page_sharing, (int)v);
	return 0;
}

int sm_ksm_set(struct sm_machine *m, const struct sm_ksm_config *cfg)
{
	struct ksm *k;
	long err = 0;

	if (!m || !cfg || cfg->run > 2 || cfg->use_zero_pages > 1 || cfg->max_page_sharing == 1 ||
	    cfg->max_page_sharing > INT_MAX)
		return -EINVAL;
	k = m->ksm;
	sm_rcu_thread_online();
	pthread_mutex_lock(&k->mutex);
	err = set_max_page_sharing(k, m, cfg->max_page_sharing);
	if (err) {
		pthread_mutex_unlock(&k->mutex);
		return (int)err;
	}
	WRITE_ONCE(k->pages_to_scan, cfg->pages_to_scan);
	WRITE_ONCE(k->sleep_millisecs, cfg->sleep_millisecs);
	WRITE_ONCE(k->use_zero_pages, cfg->use_zero_pages != 0);
	if (cfg->run == 2 && k->run != 2)
		err = unmerge_and_remove_all_rmap_items(k, m);
	WRITE_ONCE(k->run, err ? 0 : cfg->run);
	if (k->run == 1)
		err = err ? err : ksmd_start(k, m);
	pthread_cond_signal(&k->wake);
	pthread_mutex_unlock(&k->mutex);
	return (int)err;
}

long sm_ksm_scan(struct sm_machine *m, unsigned full_scans)
{
	struct ksm *k;
	long pages = 0;

	if (!m)
		return -EINVAL;
	k = m->ksm;
	sm_rcu_thread_online();
	pthread_mutex_lock(&k->mutex);
	for (unsigned i = 0; i < full_scans; i++) {
		uint64_t before = k->full_scans;

		do
			pages += ksm_do_scan(k, m, ~0ul);
		while (k->full_scans == before && !list_empty(&k->mm_slots));
		if (list_empty(&k->mm_slots))
			break;
	}
	pthread_mutex_unlock(&k->mutex);
	return pages;
}

void sm_ksm_stats(struct sm_machine *m, struct sm_ksm_stats *st)
{
	struct ksm *k = m->ksm;
	long shared = READ_ONCE(k->pages_shared), sharing = READ_ONCE(k->pages_sharing);
	long unshared = READ_ONCE(k->pages_unshared), items = READ_ONCE(k->rmap_items);
	long zero = __atomic_load_n(&k->zero_pages, __ATOMIC_RELAXED);
	long volatile_pages = items - shared - sharing - unshared;

	st->pages_shared = (uint64_t)shared;
	st->pages_sharing = (uint64_t)sharing;
	st->pages_unshared = (uint64_t)unshared;
	st->pages_volatile = volatile_pages > 0 ? (uint64_t)volatile_pages : 0;
	st->pages_scanned = __atomic_load_n(&k->pages_scanned, __ATOMIC_RELAXED);
	st->full_scans = __atomic_load_n(&k->full_scans, __ATOMIC_RELAXED);
	st->ksm_zero_pages = (uint64_t)zero;
	st->general_profit = (int64_t)(sharing + zero) * (int64_t)PAGE_SIZE -
			     (int64_t)items * KSM_PROFIT_ITEM_BYTES;
	st->stable_nodes = (uint64_t)READ_ONCE(k->stable_nodes);
	st->pages_reused = __atomic_load_n(&k->pages_reused, __ATOMIC_RELAXED);
	st->stable_node_chains = (uint64_t)READ_ONCE(k->stable_node_chains);
	st->stable_node_dups = (uint64_t)READ_ONCE(k->stable_node_dups);
}

long ksm_process_profit(struct sm_mm *mm)
{
	long merging = __atomic_load_n(&mm->ksm_merging_pages, __ATOMIC_RELAXED);
	long zero = __atomic_load_n(&mm->ksm_zero_pages, __ATOMIC_RELAXED);
	long items = __atomic_load_n(&mm->ksm_rmap_items, __ATOMIC_RELAXED);

	return (merging + zero) * (long)PAGE_SIZE - items * KSM_PROFIT_ITEM_BYTES;
}
