/*
 * cltape-devices — lists the OpenCL devices cltape can use, with the properties that matter to
 * it, and marks the one a context would pick (CLTAPE_DEVICE, else the first GPU, else the first
 * CPU; --device tries another selector).
 */
#include <cltape.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(ct_device_type type) {
  switch (type) {
    case CT_DEVICE_CPU: return "cpu";
    case CT_DEVICE_GPU: return "gpu";
    case CT_DEVICE_ACCELERATOR: return "accelerator";
    default: return "other";
  }
}

/* "15.6 GiB", "512 KiB" */
static const char *bytes_text(uint64_t bytes, char *buf, size_t cap) {
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) snprintf(buf, cap, "%llu bytes", (unsigned long long)bytes);
  else snprintf(buf, cap, v < 10.0 && v != (double)(uint64_t)v ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: cltape-devices [--brief] [--device SELECTOR] [--help]\n"
          "\n"
          "Lists the OpenCL devices cltape can use and marks the one a context picks.\n"
          "\n"
          "  -b, --brief            one line per device\n"
          "  -d, --device SELECTOR  mark the device this selector picks instead of the default: an\n"
          "                         index, gpu, cpu, or part of the device's or platform's name\n"
          "                         (the default is $CLTAPE_DEVICE, else the first GPU, else the\n"
          "                         first CPU)\n"
          "  -h, --help             this text\n");
}

int main(int argc, char **argv) {
  bool brief = false;
  const char *selector = NULL;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "-b") == 0 || strcmp(a, "--brief") == 0) {
      brief = true;
    } else if (strcmp(a, "-d") == 0 || strcmp(a, "--device") == 0) {
      if (i + 1 >= argc || !argv[i + 1][0]) {
        fprintf(stderr, "cltape-devices: %s needs a selector\n", a);
        usage(stderr);
        return 2;
      }
      selector = argv[++i];
    } else if (strncmp(a, "--device=", 9) == 0 && a[9]) {
      selector = a + 9;
    } else {
      fprintf(stderr, "cltape-devices: unknown argument \"%s\"\n", a);
      usage(stderr);
      return 2;
    }
  }

  int count = 0;
  ct_status s = ct_device_list(NULL, 0, &count);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-devices: listing the devices failed: %s: %s\n", ct_status_name(s), ct_errmsg());
    return 1;
  }
  if (count == 0) {
    fprintf(stderr, "cltape-devices: no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)\n");
    return 1;
  }
  ct_device_info *devs = calloc((size_t)count, sizeof *devs);
  if (!devs) {
    fprintf(stderr, "cltape-devices: out of memory\n");
    return 1;
  }
  s = ct_device_list(devs, count, &count);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-devices: listing the devices failed: %s: %s\n", ct_status_name(s), ct_errmsg());
    free(devs);
    return 1;
  }

  /* the device a context picks: ask the library rather than repeat its rules */
  int picked = -1;
  char pick_error[512] = "";
  ct_context *ctx = NULL;
  s = ct_context_create(selector, &ctx);
  if (s == CT_OK) {
    ct_device_info info;
    if (ct_context_device(ctx, &info) == CT_OK) picked = info.index;
    ct_context_free(ctx);
  } else {
    snprintf(pick_error, sizeof pick_error, "%s: %s", ct_status_name(s), ct_errmsg());
  }
  const char *env = getenv("CLTAPE_DEVICE");
  char why[300];
  if (selector) snprintf(why, sizeof why, "selected by --device %s", selector);
  else if (env && *env) snprintf(why, sizeof why, "selected by CLTAPE_DEVICE=%s", env);
  else snprintf(why, sizeof why, "the default");

  if (!brief) printf("cltape %s: %d OpenCL device%s\n", ct_version_string(), count, count == 1 ? "" : "s");
  for (int i = 0; i < count; ++i) {
    const ct_device_info *d = &devs[i];
    char mem[32], alloc[32], local[32];
    bytes_text(d->global_mem_bytes, mem, sizeof mem);
    bytes_text(d->max_alloc_bytes, alloc, sizeof alloc);
    bytes_text(d->local_mem_bytes, local, sizeof local);
    if (brief) {
      printf("%d\t%s\t%s\t%u CU\t%s\tfp64 %s\t%s\t%s%s\n", d->index, type_name(d->type), d->name, d->compute_units,
             mem, d->fp64 ? "yes" : "no", d->platform, d->driver_version, d->index == picked ? "\t*" : "");
      continue;
    }
    bool mark = d->index == picked;
    printf("\n#%d  %s%s%s\n", d->index, d->name, mark ? "  <- " : "", mark ? why : "");
    printf("    type            %s\n", type_name(d->type));
    printf("    platform        %s\n", d->platform);
    printf("    vendor          %s\n", d->vendor);
    printf("    compute units   %u\n", d->compute_units);
    printf("    global memory   %s (largest buffer %s)\n", mem, alloc);
    printf("    local memory    %s\n", local);
    printf("    work-group      up to %zu work-items\n", d->max_work_group_size);
    printf("    fp64            %s\n", d->fp64 ? "yes (float64 tensors supported)" : "no (float32 and int32 only)");
    printf("    OpenCL C        %s\n", d->opencl_c_version);
    printf("    device version  %s\n", d->device_version);
    printf("    driver          %s\n", d->driver_version);
  }
  if (picked < 0) {
    fprintf(stderr, "cltape-devices: no device is %s: %s\n", why, pick_error);
    free(devs);
    return selector ? 2 : 1;
  }
  free(devs);
  return 0;
}
