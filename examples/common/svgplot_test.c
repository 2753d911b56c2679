/*
 * svgplot_test.c — runs the svgplot self-test. Usage: svgplot_test [output-directory]
 * Writes the sample charts (SVG, and PNG when a converter is installed) into the directory,
 * "svgplot_test_out" by default. Exits with status 0 when every check passed.
 */
#include "svgplot.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "svgplot_test_out";
    int failures = svgplot_selftest(dir);
    if (failures)
        fprintf(stderr, "svgplot_test: %d check(s) failed\n", failures);
    else
        printf("svgplot_test: all checks passed; charts in %s/\n", dir);
    return failures ? 1 : 0;
}
