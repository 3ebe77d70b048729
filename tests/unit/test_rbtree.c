/*
 * The red-black tree (base/rbtree.c): random inserts and erases keep every
 * property (rb_check) and the in-order walk sorted, against a plain array.
 * Prints its seed; SOFTMM_SEED repeats a run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>
#include "base/rbtree.h"
#include "base/compiler.h"

#define N 2000

struct item {
	struct rb_node node;
	unsigned key;
	bool in;
};

static void insert(struct rb_root *root, struct item *it)
{
	struct rb_node **link = &root->node, *parent = NULL;

	while (*link) {
		struct item *other = container_of(*link, struct item, node);

		parent = *link;
		link = it->key < other->key ? &parent->left : &parent->right;
	}
	rb_link_node(&it->node, parent, link);
	rb_insert_color(&it->node, root);
	it->in = true;
}

static void test_random(void **state)
{
	static struct item items[N];
	const char *env = getenv("SOFTMM_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
	struct rb_root root = RB_ROOT;
	int in = 0;

	(void)state;
	printf("test_rbtree seed %u\n", seed);
	srand(seed);
	for (int i = 0; i < N; i++)
		items[i].key = (unsigned)rand() % (N / 2);   /* duplicates too */
	for (int round = 0; round < 20 * N; round++) {
		struct item *it = &items[(unsigned)rand() % N];

		if (it->in) {
			rb_erase(&it->node, &root);
			it->in = false;
			in--;
		} else {
			insert(&root, it);
			in++;
		}
		if (round % 97 == 0 || round < 200) {
			unsigned last = 0;
			int count = 0;

			assert_true(rb_check(&root) >= 0);
			for (struct rb_node *n = rb_first(&root); n; n = rb_next(n)) {
				struct item *x = container_of(n, struct item, node);

				assert_true(x->key >= last);
				last = x->key;
				count++;
			}
			assert_int_equal(count, in);
		}
	}
	for (int i = 0; i < N; i++)
		if (items[i].in)
			rb_erase(&items[i].node, &root);
	assert_true(rb_empty(&root));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
