/*
 * embed: the smallest program that embeds softmm. A machine with 64 MiB of
 * simulated RAM, one address space, one CPU: map two pages, write and read
 * them back, make them read-only and watch the write fault, print /proc views.
 *
 *   cc embed.c $(pkg-config --cflags --libs softmm) -o embed
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <softmm.h>

int main(void)
{
	struct sm_config cfg = { .ram_bytes = 64ul << 20 };
	struct sm_machine *m = sm_machine_create(&cfg);
	struct sm_mm *mm = m ? sm_mm_create(m) : NULL;
	struct sm_cpu *cpu = m ? sm_cpu_create(m) : NULL;
	const char msg[] = "hello from simulated RAM";
	char buf[8192];
	long addr, fault;

	if (!mm || !cpu) {
		perror("softmm");
		return 1;
	}
	sm_cpu_switch_mm(cpu, mm);

	addr = sm_mmap(mm, 0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr < 0 || sm_write(cpu, addr, msg, sizeof(msg)) || sm_read(cpu, addr, buf, sizeof(msg)))
		return 1;
	printf("mmap at %#lx; wrote and read back: \"%s\"\n", addr, buf);

	sm_mprotect(mm, addr, 2 * 4096, PROT_READ);
	fault = sm_write(cpu, addr, msg, sizeof(msg));
	printf("write after mprotect(PROT_READ): %ld (%s)\n", fault,
	       fault == -EFAULT ? "-EFAULT, the guest's SIGSEGV" : "unexpected");

	if (sm_proc_read(mm, "maps", buf, sizeof(buf)) >= 0)
		printf("--- maps\n%s", buf);
	if (sm_proc_read(mm, "status", buf, sizeof(buf)) >= 0) {
		printf("--- status (Vm and Rss lines)\n");
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
			if (!strncmp(line, "Vm", 2) || !strncmp(line, "Rss", 3))
				printf("%s\n", line);
	}

	sm_cpu_switch_mm(cpu, NULL);
	sm_cpu_destroy(cpu);
	sm_mm_destroy(mm);
	sm_machine_destroy(m);
	return fault == -EFAULT ? 0 : 1;
}
