// SPDX-License-Identifier: GPL-2.0
/*
 * The KUnit suites the kernel ran at boot (kunit.enable=1), one KTAP
 * result per test case, read from debugfs (CONFIG_KUNIT_DEBUGFS:
 * /sys/kernel/debug/kunit/<suite>/results, each suite's own KTAP). Our
 * rust/ additions' doctests and unit tests must be among them: a suite
 * list without them fails, so a kernel built without them cannot pass.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KUNIT_DIR "/sys/kernel/debug/kunit"

/* Test cases whose names must appear: ours. */
static const char *const ours[] = {
	"iommu_driver_rs",
	"iommu_hw_info_rs",
	"irq_remap_rs",
	"pci_ims_rs",
	"rust_kernel_iommu_hw_info.riscv_iommu_uapi",
};

struct result {
	char name[192];
	int ok;
	char directive[64];
};

static struct result results[4096];
static int nresults;

/* Adds the test cases of one suite's KTAP (indented result lines). */
static void parse_suite(const char *suite, FILE *f)
{
	char line[512];

	while (fgets(line, sizeof(line), f) && nresults < 4096) {
		char *p = line, *name, *hash;
		int ok;

		if (!isspace((unsigned char)*p))
			continue;	/* the suite's own result */
		while (isspace((unsigned char)*p))
			p++;
		if (!strncmp(p, "not ok ", 7)) {
			ok = 0;
			p += 7;
		} else if (!strncmp(p, "ok ", 3)) {
			ok = 1;
			p += 3;
		} else {
			continue;
		}
		strtoul(p, &name, 10);
		while (*name == ' ')
			name++;
		name[strcspn(name, "\n")] = 0;
		hash = strstr(name, " # ");
		struct result *r = &results[nresults++];

		r->ok = ok;
		r->directive[0] = 0;
		if (hash) {
			snprintf(r->directive, sizeof(r->directive), "%s", hash + 3);
			*hash = 0;
		}
		snprintf(r->name, sizeof(r->name), "%s.%s", suite, name);
	}
}

int main(void)
{
	struct dirent *de;
	DIR *d = opendir(KUNIT_DIR);
	int failed = 0, missing = 0;

	printf("TAP version 13\n");
	if (!d) {
		printf("1..1\nnot ok 1 kunit # no %s: a kernel without KUnit, or kunit.enable=0\n", KUNIT_DIR);
		return 1;
	}
	while ((de = readdir(d))) {
		char path[512];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), KUNIT_DIR "/%s/results", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		parse_suite(de->d_name, f);
		fclose(f);
	}
	closedir(d);

	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		int found = 0;

		for (int j = 0; j < nresults; j++)
			found |= strstr(results[j].name, ours[i]) != NULL;
		if (!found) {
			printf("# missing: no test case named *%s*\n", ours[i]);
			missing++;
		}
	}
	printf("1..%d\n", nresults + 1);
	for (int i = 0; i < nresults; i++) {
		struct result *r = &results[i];

		failed += !r->ok;
		printf("%sok %d %s%s%s\n", r->ok ? "" : "not ", i + 1, r->name,
		       r->directive[0] ? " # " : "", r->directive);
	}
	printf("%sok %d our rust/ doctests and KUnit tests ran (%d missing)\n",
	       missing ? "not " : "", nresults + 1, missing);
	return failed || missing;
}
