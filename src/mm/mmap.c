/*
 * mmap, with x86-64 Linux's argument checks, placement and merge rules
 * (munmap is munmap.c). A file mapping checks the fd's access mode as do_mmap
 * does and hands the VMA a reference to the file's page cache (filemap.c);
 * MAP_SHARED without a file gets an in-memory one (shmem_file_setup).
 *
 * Placement is top-down below mmap_base (TASK_SIZE - 128 MiB, Linux's value
 * without randomization), honouring a hint when the range is free; anonymous
 * mappings whose length is a multiple of 2 MiB and have no hint are aligned
 * on 2 MiB as Linux does for THP.
 *
 * Ranges that a munmap in flight is still zapping (munmap.c) are neither
 * chosen nor mapped over: placement skips them and a fixed mapping waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "mm/ksm.h"
#include "mm/mmap.h"
#include "mm/filemap.h"
#include "mm/memory.h"
#include "mm/munmap.h"
#include "mm/vma.h"
#include "mm/mm_api.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#define MAP_TYPE_MASK 0x0f
/* Flags every file accepts with MAP_SHARED_VALIDATE (Linux's LEGACY_MAP_MASK). */
#define LEGACY_MAP_MASK (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | \
			 MAP_EXECUTABLE | 0x4000000 /* MAP_UNINITIALIZED */ | MAP_GROWSDOWN | \
			 MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | \
			 MAP_HUGETLB | MAP_32BIT | 0x80 /* MAP_ABOVE4G */ | \
			 (21 << 26) /* MAP_HUGE_2MB */ | (30 << 26) /* MAP_HUGE_1GB */)

/* The host file an mmap names: its fd's access mode and type. */
struct mmap_file {
	int fd;
	int accmode;        /* O_RDONLY, O_WRONLY or O_RDWR */
	bool regular;
};

void vm_stat_account(struct sm_mm *mm, unsigned long flags, long npages)
{
	mm->total_vm += npages;
	if ((flags & (VM_EXEC | VM_WRITE | VM_GROWSDOWN)) == VM_EXEC)
		mm->exec_vm += npages;
	else if (flags & VM_GROWSDOWN)
		mm->stack_vm += npages;
	else if ((flags & (VM_WRITE | VM_SHARED | VM_GROWSDOWN)) == VM_WRITE)
		mm->data_vm += npages;
	if (mm->total_vm > mm->hiwater_vm)
		mm->hiwater_vm = mm->total_vm;
}

static bool range_free(struct sm_mm *mm, unsigned long addr, unsigned long len)
{
	return find_vma_intersection(mm, addr, addr + len) == NULL &&
	       munmap_reserved_intersection(mm, addr, addr + len) == NULL;
}

/*
 * The gap search finds room among the VMAs; a munmap in flight may still
 * reserve part of it. A top-down fit sits at the top of its gap, so what
 * lies above the lowest reserved range it overlaps is too small: search
 * again below that range (bottom-up: above the highest).
 */
static unsigned long search_topdown(struct sm_mm *mm, unsigned long len, unsigned long low,
				    unsigned long high)
{
	struct gt_node *r;
	unsigned long out;

	for (;;) {
		if (gt_find_gap_topdown(&mm->mm_mt, len, low, high, PAGE_SIZE - 1, 0, &out))
			return (unsigned long)-ENOMEM;
		r = munmap_reserved_intersection(mm, out, out + len);
		if (!r)
			return out;
		high = r->start;
	}
}

static unsigned long search_bottomup(struct sm_mm *mm, unsigned long len, unsigned long low,
				     unsigned long high)
{
	struct gt_node *r, *n;
	unsigned long out;

	for (;;) {
		if (gt_find_gap_bottomup(&mm->mm_mt, len, low, high, PAGE_SIZE - 1, 0, &out))
			return (unsigned long)-ENOMEM;
		r = munmap_reserved_intersection(mm, out, out + len);
		if (!r)
			return out;
		while ((n = gt_next(r)) && n->start < out + len)
			r = n;
		low = r->end;
	}
}

unsigned long get_unmapped_area(struct sm_mm *mm, unsigned long addr, unsigned long len,
				unsigned long flags)
{
	unsigned long ret;

	if (len > mm->task_size)
		return (unsigned long)-ENOMEM;
	if (flags & MAP_FIXED) {
		ret = addr;
	} else if (flags & MAP_32BIT) {
		ret = search_bottomup(mm, len, 0x40000000ul, 0x80000000ul);
	} else if (addr) {
		addr &= PAGE_MASK;
		if (mm->task_size - len >= addr &&
		    (addr > DEFAULT_MAP_WINDOW) == (addr + len > DEFAULT_MAP_WINDOW) &&
		    range_free(mm, addr, len))
			return addr;
		ret = search_topdown(mm, len, PAGE_SIZE, mm->mmap_base);
	} else if ((len & (PMD_SIZE - 1)) == 0) {
		/* Linux's thp_get_unmapped_area: search len + 2 MiB, then align. */
		ret = search_topdown(mm, len + PMD_SIZE, PAGE_SIZE, mm->mmap_base);
		if (!IS_ERR_ADDR(ret)) {
			unsigned long off_sub = (0 - ret) & (PMD_SIZE - 1);

			ret = off_sub ? ret + off_sub : ret + PMD_SIZE;
		} else {
			ret = search_topdown(mm, len, PAGE_SIZE, mm->mmap_base);
		}
	} else {
		ret = search_topdown(mm, len, PAGE_SIZE, mm->mmap_base);
	}
	if (IS_ERR_ADDR(ret))
		return ret;
	if (ret > mm->task_size - len)
		return (unsigned long)-ENOMEM;
	if (offset_in_page(ret))
		return (unsigned long)-EINVAL;
	return ret;
}

long mmap_region(struct sm_mm *mm, unsigned long addr, unsigned long len,
		 unsigned long vm_flags, unsigned long pgoff)
{
	return mmap_region_file(mm, addr, len, vm_flags, pgoff, NULL);
}

long mmap_region_file(struct sm_mm *mm, unsigned long addr, unsigned long len,
		      unsigned long vm_flags, unsigned long pgoff, struct address_space *file)
{
	struct vm_area_struct *vma;
	long err;

	err = do_vmi_munmap(mm, addr, len, false);
	if (err)
		goto fail;
	if ((vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE)
		vm_flags |= VM_ACCOUNT;
	vm_flags = ksm_vma_flags(mm, vm_flags);
	err = -ENOMEM;
	vma = vm_area_alloc(mm);
	if (!vma)
		goto fail;
	if (!file && (vm_flags & VM_SHARED)) {
		/* Linux's shmem_zero_setup: shared anonymous memory is a file. */
		int e;

		file = shmem_file_setup(mm->machine, len, &e);
		if (!file) {
			vm_area_free(vma);
			return e;
		}
	}
	vma->vm_file = file;   /* the caller's reference becomes the VMA's */
	vma->vm_start = addr;
	vma->vm_end = addr + len;
	vma->vm_pgoff = pgoff;
	vma_set_flags(vma, vm_flags | VM_SOFTDIRTY);
	err = vma_link(mm, vma);
	SM_ASSERT(!err, "mmap_region: range %lx-%lx still occupied", addr, addr + len);
	vma_merge_neighbours(mm, vma, &VMA_NEW_RANGE);
	vm_stat_account(mm, vm_flags, (long)(len >> PAGE_SHIFT));
	return (long)addr;
fail:
	if (file)
		mapping_put(file);
	return err;
}

long populate_range(struct sm_mm *mm, unsigned long start, unsigned long end, enum populate_mode mode)
{
	unsigned long addr = start;

	while (addr < end) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		unsigned fault;

		if (!vma)
			return -ENOMEM;
		if (mode == POPULATE_WRITE)
			fault = FAULT_FLAG_WRITE;
		else if (mode == POPULATE_READ)
			fault = 0;
		else
			fault = (vma->vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE ? FAULT_FLAG_WRITE : 0;
		if (!(vma->vm_flags & VM_ACCESS_FLAGS)) {
			addr = vma->vm_end;   /* MAP_POPULATE skips PROT_NONE */
			continue;
		}
		for (; addr < min(end, vma->vm_end); addr += PAGE_SIZE) {
			int r = handle_mm_fault(vma, addr, fault);

			if (r & VM_FAULT_OOM)
				return -ENOMEM;
			if (r)
				return -EFAULT;
		}
	}
	return 0;
}

/* Linux's do_mmap checks for a file: which mappings its fd allows. */
static long file_mmap_flags(const struct mmap_file *f, int prot, int *flags,
			    unsigned long *vm_flags, unsigned long len, unsigned long pgoff)
{
	/* file_mmap_ok: the range must fit below MAX_LFS_FILESIZE. */
	if (len > (unsigned long)LLONG_MAX || pgoff > ((unsigned long)LLONG_MAX - len) >> PAGE_SHIFT)
		return -EOVERFLOW;
	switch (*flags & MAP_TYPE_MASK) {
	case MAP_SHARED:
		*flags &= LEGACY_MAP_MASK;
		/* fall through */
	case MAP_SHARED_VALIDATE:
		if (*flags & ~LEGACY_MAP_MASK)
			return -EOPNOTSUPP;
		if ((prot & PROT_WRITE) && f->accmode == O_RDONLY)
			return -EACCES;
		*vm_flags |= VM_SHARED | VM_MAYSHARE;
		if (f->accmode == O_RDONLY)
			*vm_flags &= ~(VM_MAYWRITE | VM_SHARED);
		/* fall through */
	case MAP_PRIVATE:
		if (f->accmode == O_WRONLY)
			return -EACCES;
		if (!f->regular)
			return -ENODEV;
		if (*flags & MAP_GROWSDOWN)
			return -EINVAL;
		return 0;
	default:
		return -EINVAL;
	}
}

static long do_mmap(struct sm_mm *mm, unsigned long addr, unsigned long len, int prot,
		    int flags, unsigned long pgoff, const struct mmap_file *file,
		    unsigned long *populate)
{
	unsigned long vm_flags = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
	struct address_space *as = NULL;
	long ret;

	if (!(flags & MAP_FIXED) && addr && (addr & PAGE_MASK) < MMAP_MIN_ADDR)
		addr = PAGE_ALIGN(MMAP_MIN_ADDR);
	len = PAGE_ALIGN(len);
	if (!len)
		return -ENOMEM;
	if (pgoff + (len >> PAGE_SHIFT) < pgoff)
		return -EOVERFLOW;
	if (mm->map_count > mm->machine->max_map_count)
		return -ENOMEM;
	if (flags & MAP_FIXED_NOREPLACE)
		flags |= MAP_FIXED;
	addr = get_unmapped_area(mm, addr, len, (unsigned long)flags);
	if (IS_ERR_ADDR(addr))
		return (long)addr;
	if ((flags & MAP_FIXED_NOREPLACE) && !range_free(mm, addr, len))
		return -EEXIST;
	if (file) {
		ret = file_mmap_flags(file, prot, &flags, &vm_flags, len, pgoff);
		if (ret)
			return ret;
	} else {
		switch (flags & MAP_TYPE_MASK) {
		case MAP_PRIVATE:
			pgoff = addr >> PAGE_SHIFT;
			break;
		case MAP_SHARED:
			if (flags & MAP_GROWSDOWN)
				return -EINVAL;
			pgoff = 0;
			vm_flags |= VM_SHARED | VM_MAYSHARE;
			break;
		case MAP_DROPPABLE:
			return -EOPNOTSUPP;   /* droppable memory: not yet */
		default:
			return -EINVAL;
		}
	}

	if (prot & PROT_READ)
		vm_flags |= VM_READ;
	if (prot & PROT_WRITE)
		vm_flags |= VM_WRITE;
	if (prot & PROT_EXEC)
		vm_flags |= VM_EXEC;
	if (flags & MAP_GROWSDOWN)
		vm_flags |= VM_GROWSDOWN;
	if (flags & MAP_LOCKED)
		vm_flags |= VM_LOCKED;
	if (flags & MAP_STACK)
		vm_flags |= VM_NOHUGEPAGE;
	if (flags & MAP_NORESERVE)
		vm_flags |= VM_NORESERVE;
	if (file) {
		int err;

		as = filemap_get(mm->machine, file->fd, &err);
		if (!as)
			return err;
	}
	ret = mmap_region_file(mm, addr, len, vm_flags, pgoff, as);
	if (ret >= 0 && ((vm_flags & VM_LOCKED) ||
			 (flags & (MAP_POPULATE | MAP_NONBLOCK)) == MAP_POPULATE))
		*populate = len;
	return ret;
}

long sm_mmap(struct sm_mm *mm, unsigned long addr, unsigned long len, int prot,
	     int flags, int fd, long offset)
{
	unsigned long populate = 0;
	long ret;

	struct mmap_file file, *filep = NULL;

	if (offset & ~PAGE_MASK)
		return -EINVAL;
	if (!(flags & MAP_ANONYMOUS)) {
		struct stat st;
		int fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);

		if (fl < 0)
			return -EBADF;
		if (flags & MAP_HUGETLB)
			return -EINVAL;   /* not a hugetlbfs file */
		if (fstat(fd, &st))
			return -EBADF;
		file = (struct mmap_file){ fd, fl & O_ACCMODE, S_ISREG(st.st_mode) };
		filep = &file;
	} else if (flags & MAP_HUGETLB) {
		return -ENOMEM;   /* as a kernel with no huge pages reserved */
	}
	if (!len)
		return -EINVAL;
	mm_syscall_enter(mm);
	do {
		down_write(&mm->mmap_lock);
	} while ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) &&
		 munmap_wait_reserved(mm, addr, len > ~0ul - addr ? ~0ul : addr + len));
	ret = do_mmap(mm, addr, len, prot, flags, (unsigned long)offset >> PAGE_SHIFT, filep,
		      &populate);
	if (ret >= 0 && populate) {
		downgrade_write(&mm->mmap_lock);
		populate_range(mm, (unsigned long)ret, (unsigned long)ret + populate, POPULATE_MMAP);
		up_read(&mm->mmap_lock);
	} else {
		up_write(&mm->mmap_lock);
	}
	mm_syscall_exit(mm);
	return ret;
}
