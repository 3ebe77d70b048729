/*
 * Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS): Linux's
 * shmem_zero_setup, a file with no host file behind it. Its pages live in
 * the page cache of an address_space of its own (zero-filled on first
 * touch, marked swapbacked so that they count as RssShmem), it is never
 * written back, and it is gone with its last mapping. fork shares it like
 * any file mapping. maps names it "/dev/zero (deleted)" on device 00:01,
 * with an inode number of its own, as Linux does.
 */
#include <errno.h>
#include <string.h>
#include "mm/filemap.h"

struct address_space *shmem_file_setup(struct sm_machine *m, unsigned long size, int *err)
{
	struct address_space *as = mapping_alloc(m);

	if (!as || !(as->path = strdup("/dev/zero (deleted)"))) {
		if (as)
			mapping_free(as);
		*err = -ENOMEM;
		return NULL;
	}
	as->shmem = true;
	as->dev = 1;   /* Linux's shm mount: 00:01 */
	as->size = size;
	pthread_mutex_lock(&m->files.lock);
	as->ino = m->files.next_shmem_ino++;
	list_add_tail(&as->node, &m->files.mappings);
	pthread_mutex_unlock(&m->files.lock);
	return as;
}

