#!/bin/sh
# The library's variables change inside a running process only through ct__env_override
# (base/env.c): setenv and unsetenv may free the environment that PoCL's worker threads read with
# getenv while they run kernels. Lists every test that calls them on a CLTAPE_ variable, and every
# getenv in the library outside base/env.c; fails when there is one. (The benchmarks set variables
# for the child processes they start, after their contexts are freed.)
src=${1:?source directory}
bad=$(grep -rnE '(^|[^_[:alnum:]])(setenv|unsetenv|putenv)[[:space:]]*\([[:space:]]*"CLTAPE_' \
        "$src/tests" --include='*.c' --include='*.h')
lib=$(grep -rnE '(^|[^_[:alnum:]])getenv[[:space:]]*\(' "$src/base" "$src/lib" "$src/host" --include='*.c' \
        | grep -v '^'"$src"'/base/env\.c:')
if [ -n "$bad$lib" ]; then
  [ -n "$bad" ] && printf 'setenv of a library variable (use ct__env_override):\n%s\n' "$bad"
  [ -n "$lib" ] && printf 'getenv in the library (use ct__getenv):\n%s\n' "$lib"
  exit 1
fi
echo "ok: no setenv of a library variable in the tests, no getenv in the library outside base/env.c"
