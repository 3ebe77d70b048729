/* Reverse mapping: anon_vma, anon_vma_chain and folio mapcounts. */
#ifndef SM_MM_RMAP_H
#define SM_MM_RMAP_H

#include "mm/mm_types.h"

int  anon_vma_prepare(struct vm_area_struct *vma);
/* dst (a split-off part of src) joins every anon_vma src is chained to. */
int  anon_vma_clone(struct vm_area_struct *dst, struct vm_area_struct *src);
void unlink_anon_vmas(struct vm_area_struct *vma);
int  anon_vma_fork(struct vm_area_struct *vma, struct vm_area_struct *pvma);
void put_anon_vma(struct anon_vma *av);

static inline unsigned long linear_page_index(const struct vm_area_struct *vma, unsigned long addr)
{
	return ((addr - vma->vm_start) >> PAGE_SHIFT) + vma->vm_pgoff;
}

static inline bool page_is_anon(const struct page *p)
{
	return ((unsigned long)p->mapping & PAGE_MAPPING_ANON) != 0;
}
static inline struct anon_vma *page_anon_vma(const struct page *p)
{
	return (struct anon_vma *)((unsigned long)p->mapping & ~PAGE_MAPPING_ANON);
}

/* A freshly allocated, exclusively owned anon folio gets its first mapping.
 * Precondition: PTE lock held. */
void folio_add_new_anon_rmap(struct page *head, struct vm_area_struct *vma, unsigned long addr);
/* nr consecutive pages (from page) of the folio headed by head lose a PTE
 * mapping each. Precondition: PTE lock held. */
void folio_remove_rmap_ptes(struct page *head, struct page *page, int nr);
/* fork: nr consecutive pages gain a PTE mapping each in the child, and are
 * no longer exclusive to one mm. Precondition: both PTE locks held. */
void folio_dup_anon_rmap_ptes(struct page *head, struct page *page, int nr);
/* nr consecutive pages of a page cache folio gain a PTE mapping each (the
 * file rmap itself is the VMA's place in the file's interval tree).
 * Precondition: PTE lock held. */
void folio_add_file_rmap_ptes(struct page *head, struct page *page, int nr);

/* Call fn on every PTE that maps page, in every VMA its anon_vma reaches.
 * fn returns false to stop. Returns the number of PTEs visited. */
struct rmap_hit {
	struct vm_area_struct *vma;
	unsigned long address;
	pte_t pte;
};
int rmap_walk_anon(struct sm_machine *m, struct page *page,
		   bool (*fn)(const struct rmap_hit *hit, void *arg), void *arg);
int  page_mapcount(const struct page *p);

#endif
