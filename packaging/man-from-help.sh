#!/usr/bin/env bash
# man-from-help.sh BINARY SECTION VERSION OUT: the man page of an npa binary,
# made from its --help. Every npa binary's --help is written as a man page
# (NAME, SYNOPSIS, DESCRIPTION, OPTIONS, ..., EXIT STATUS, EXAMPLES, each
# heading alone on a line in capitals), so each heading becomes a .SH and
# its body is kept as laid out (.nf): the page and --help cannot drift.
set -euo pipefail
bin=$1 sec=$2 ver=$3 out=$4
name=$(basename "$bin")
help=$("$bin" --help) || { echo "man-from-help: $bin --help failed" >&2; exit 1; }
case $help in NAME*) ;; *) echo "man-from-help: $name --help does not start with NAME" >&2; exit 1 ;; esac
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
{
  printf '.\\" Generated from "%s --help" by packaging/man-from-help.sh.\n' "$name"
  printf '.TH "%s" "%s" "%s" "npa %s" "npa"\n' "${name^^}" "$sec" "$date" "$ver"
  # Escapes: a backslash is \e; a line starting with . or ' is protected by \&.
  printf '%s\n' "$help" | awk '
    /^[A-Z][A-Z ]*[A-Z]$/ { if (pre) print ".fi"; print ".SH " $0; print ".nf"; pre = 1; next }
    { sub(/^    /, ""); gsub(/\\/, "\\e"); if ($0 ~ /^[.\047]/) $0 = "\\&" $0; print }
    END { if (pre) print ".fi" }'
} >"$out.tmp"
mv "$out.tmp" "$out"
