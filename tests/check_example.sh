#!/usr/bin/env bash
# Runs an example and checks its output: every non-comment line of the .expected file is an
# extended regex that must match a line of the output, in order. Extra arguments go to the
# example. Fails on a non-zero exit.
set -uo pipefail
exe=$1 expected=$2; shift 2
out=$("$exe" "$@" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "check_example: $exe exited with $rc"; exit 1; }
line_no=0
mapfile -t lines <<<"$out"
while IFS= read -r pattern; do
    [[ -z "$pattern" || "$pattern" == \#* ]] && continue
    found=0
    while [ $line_no -lt ${#lines[@]} ]; do
        if [[ "${lines[$line_no]}" =~ $pattern ]]; then found=1; line_no=$((line_no + 1)); break; fi
        line_no=$((line_no + 1))
    done
    [ $found -eq 1 ] || { echo "check_example: no output line matches /$pattern/ (in order)"; exit 1; }
done < "$expected"
echo "check_example: ok"
