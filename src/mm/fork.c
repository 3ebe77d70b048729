/*
 * fork (dup_mm): the child gets a copy of every VMA and of the parent's page
 * tables. VM_DONTCOPY VMAs are left out; VM_WIPEONFORK VMAs arrive empty.
 * Private writable memory becomes copy-on-write in both (memory.c's
 * copy_page_range write-protects the parent's PTEs and flushes). File and
 * shared anonymous VMAs share their file: without an anon_vma nothing is
 * copied and the child faults the page cache in again, so shared mappings
 * stay shared.
 *
 * Locking: the parent's mmap_lock for writing for the whole copy, so no
 * fault in the parent can run between write-protecting a PTE and the flush;
 * the child's, although nobody can reach the child yet, to keep the
 * preconditions of the helpers true.
 */
#include <errno.h>
#include "mm/ksm.h"
#include "mm/memory.h"
#include "mm/filemap.h"
#include "mm/mmap.h"
#include "mm/rmap.h"
#include "mm/vma.h"
#include "mm/mm_api.h"

static int dup_vma(struct sm_mm *mm, struct vm_area_struct *pvma)
{
	struct vm_area_struct *vma = vm_area_alloc(mm);
	int err;

	if (!vma)
		return -ENOMEM;
	vma->vm_start = pvma->vm_start;
	vma->vm_end = pvma->vm_end;
	vma->vm_pgoff = pvma->vm_pgoff;
	vma->vm_file = pvma->vm_file;
	if (vma->vm_file)
		mapping_get(vma->vm_file);
	vma_set_flags(vma, pvma->vm_flags & ~VM_LOCKED);
	if (!(pvma->vm_flags & VM_WIPEONFORK)) {
		err = anon_vma_fork(vma, pvma);
		if (err) {
			vm_area_free(vma);
			return err;
		}
	}
	err = vma_link(mm, vma);
	SM_ASSERT(!err, "child VMA overlaps");
	vm_stat_account(mm, vma->vm_flags, (long)vma_pages(vma));
	if (pvma->vm_flags & VM_WIPEONFORK)
		return 0;
	if (!vma->vm_file || !pvma->anon_vma)
		return copy_page_range(vma, pvma);   /* copies no page-cache PTE */
	/* The child's VMA is in the file rmap already: a walk (a hole punch)
	 * must find each copied PTE of a page-cache folio in the parent or
	 * in the child, so the copy is one step for it. */
	pthread_mutex_lock(&vma->vm_file->i_mmap_lock);
	err = copy_page_range(vma, pvma);
	pthread_mutex_unlock(&vma->vm_file->i_mmap_lock);
	return err;
}

long sm_fork(struct sm_mm *parent, struct sm_mm **childp)
{
	struct vm_area_struct *pvma;
	struct sm_mm *child;
	long err = 0;

	if (!parent || !childp)
		return -EINVAL;
	mm_syscall_enter(parent);
	child = sm_mm_create(parent->machine);
	if (!child)
		return -ENOMEM;
	down_write(&parent->mmap_lock);
	down_write(&child->mmap_lock);
	child->start_brk = parent->start_brk;
	child->brk = parent->brk;
	child->brk_set = parent->brk_set;
	child->hiwater_vm = parent->hiwater_vm;
	for (pvma = vma_first(parent); pvma; pvma = vma_next(pvma)) {
		if (pvma->vm_flags & VM_DONTCOPY)
			continue;
		err = dup_vma(child, pvma);
		if (err)
			break;
	}
	up_write(&child->mmap_lock);
	up_write(&parent->mmap_lock);
	if (!err)
		err = ksm_fork(child, parent);
	if (err) {
		sm_mm_destroy(child);
		return err;
	}
	update_hiwater_rss(child);
	*childp = child;
	mm_syscall_exit(parent);
	return 0;
}
