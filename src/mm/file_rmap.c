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
 * A walk must find every PTE that maps a page of the file, including while
 * the VMAs change: a split links the new piece before the old one shrinks,
 * a merge widens the survivor before the absorbed VMA leaves (vma.c), for a
 * moment two nodes cover the same PTEs, never none; mremap moves PTEs and
 * fork copies them under i_mmap_lock, so a walk sees them in one place or
 * the other. A hole punch counts on it (truncate.c).
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

struct range_walk {
	unsigned long first, last;
	void (*fn)(struct vm_area_struct *vma, unsigned long start, unsigned long end, void *arg);
	void *arg;
};

static bool range_walk_one(struct it_node *n, void *arg)
{
	struct range_walk *w = arg;
	struct vm_area_struct *vma = container_of(n, struct vm_area_struct, shared_rb);
	unsigned long first = max(w->first, n->start), last = min(w->last, n->last);

	w->fn(vma, vma->vm_start + ((first - vma->vm_pgoff) << PAGE_SHIFT),
	      vma->vm_start + ((last + 1 - vma->vm_pgoff) << PAGE_SHIFT), w->arg);
	return true;
}

void file_rmap_walk_range(struct address_space *as, unsigned long first, unsigned long last,
			  void (*fn)(struct vm_area_struct *vma, unsigned long start,
				     unsigned long end, void *arg),
			  void *arg)
{
	struct range_walk w = { first, last, fn, arg };

	pthread_mutex_lock(&as->i_mmap_lock);
	it_for_each(&as->i_mmap, first, last, range_walk_one, &w);
	pthread_mutex_unlock(&as->i_mmap_lock);
}

void file_rmap_walk(struct address_space *as, unsigned long pgoff,
		    bool (*fn)(struct vm_area_struct *vma, unsigned long addr, void *arg), void *arg)
{
	struct walk w = { pgoff, fn, arg };

	pthread_mutex_lock(&as->i_mmap_lock);
	it_for_each(&as->i_mmap, pgoff, pgoff, walk_one, &w);
	pthread_mutex_unlock(&as->i_mmap_lock);
}
