/*
 * The file rmap: for each file, the VMAs that map it, in an interval tree
 * keyed by the page offsets they cover (Linux's i_mmap). Writeback walks it
 * to find every PTE that may map a page cache folio.
 *
 * A VMA joins when it is first linked into an mm and leaves when it is
 * freed, not when it is detached: munmap zaps a detached VMA's pages
 * afterwards, and until they are gone writeback must still find them.
 * Splits, merges and mremap move its node (file_rmap_set_range).
 *
 * Locking: i_mmap_lock for the tree. A linked VMA's range and offset change
 * under the mmap_lock held for writing and i_mmap_lock together, so a
 * walker holding either sees them stable.
 */
#include "mm/filemap.h"

static void set_node_range(struct vm_area_struct *vma)
{
	vma->shared_rb.start = vma->vm_pgoff;
	vma->shared_rb.last = vma->vm_pgoff + vma_pages(vma) - 1;
}

void file_rmap_link(struct vm_area_struct *vma)
{
	struct address_space *as = vma->vm_file;

	if (!as || vma->in_file_rmap)
		return;
	pthread_mutex_lock(&as->i_mmap_lock);
	set_node_range(vma);
	it_insert(&as->i_mmap, &vma->shared_rb);
	vma->in_file_rmap = true;
	pthread_mutex_unlock(&as->i_mmap_lock);
}

void file_rmap_unlink(struct vm_area_struct *vma)
{
	struct address_space *as = vma->vm_file;

	if (!as || !vma->in_file_rmap)
		return;
	pthread_mutex_lock(&as->i_mmap_lock);
	it_remove(&as->i_mmap, &vma->shared_rb);
	vma->in_file_rmap = false;
	pthread_mutex_unlock(&as->i_mmap_lock);
}

void file_rmap_set_range(struct vm_area_struct *vma, unsigned long start, unsigned long end,
			 unsigned long pgoff)
{
	struct address_space *as = vma->vm_file;
	bool linked = as && vma->in_file_rmap;

	if (linked) {
		pthread_mutex_lock(&as->i_mmap_lock);
		it_remove(&as->i_mmap, &vma->shared_rb);
	}
	vma->vm_start = start;
	vma->vm_end = end;
	vma->vm_pgoff = pgoff;
	if (linked) {
		set_node_range(vma);
		it_insert(&as->i_mmap, &vma->shared_rb);
		pthread_mutex_unlock(&as->i_mmap_lock);
	}
}

struct walk {
	unsigned long pgoff;
	bool (*fn)(struct vm_area_struct *vma, unsigned long addr, void *arg);
	void *arg;
};

static bool walk_one(struct it_node *n, void *arg)
{
	struct walk *w = arg;
	struct vm_area_struct *vma = container_of(n, struct vm_area_struct, shared_rb);

	return w->fn(vma, vma->vm_start + ((w->pgoff - vma->vm_pgoff) << PAGE_SHIFT), w->arg);
}

void file_rmap_walk(struct address_space *as, unsigned long pgoff,
		    bool (*fn)(struct vm_area_struct *vma, unsigned long addr, void *arg), void *arg)
{
	struct walk w = { pgoff, fn, arg };

	pthread_mutex_lock(&as->i_mmap_lock);
	it_for_each(&as->i_mmap, pgoff, pgoff, walk_one, &w);
	pthread_mutex_unlock(&as->i_mmap_lock);
}
