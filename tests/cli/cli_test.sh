#!/usr/bin/env bash
# The command-line tool against real stores: a hand-written dump loads and dumps back byte for
# byte (binary keys, several tables and partitions, an overflow value, expiry in the future);
# a dump of one store loaded into another dumps the same; stat's figures equal the records';
# verify passes a sound store and fails (exit 1) after one flipped bit; get, put and scan;
# manifest prints the records; bad input is refused (exit 2) and writes nothing.
#
# Usage: tests/cli/cli_test.sh PATH_TO_ELOQSTORE_BINARY
set -euo pipefail
cli=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/eloqstore-cli.XXXXXX")
trap 'rm -rf "${work}"' EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if ! "$@"; then
    echo "FAILED: ${what}" >&2
    failures=$((failures + 1))
  fi
}
exit_code() {  # exit_code COMMAND... : prints the command's exit code
  set +e
  "$@" >/dev/null 2>&1
  echo $?
  set -e
}
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# A dump in the documented format, in canonical order: tables ascend, then partitions, then
# keys (bytewise).
{
  echo "eloqstore-dump 1"
  for p in 0 3; do
    for i in $(seq 100 399); do
      printf 'accounts\t%d\t%s\t%s\t%d\t0\n' "$p" "$(hex "acct$i")" "$(hex "balance-$i-$p")" "$i"
    done
  done
  # Binary keys (NUL, tab, newline, 0xff bytes) and a value larger than a page (overflow).
  printf 'blobs\t1\t%s\t%s\t5\t0\n' "00" "$(hex x)"
  printf 'blobs\t1\t%s\t%s\t5\t0\n' "0009" "$(hex tab)"
  printf 'blobs\t1\t%s\t%s\t5\t0\n' "0a0aff" "$(head -c 20000 /dev/zero | tr '\0' 'z' | od -An -v -tx1 | tr -d ' \n')"
  printf 'blobs\t1\t%s\t%s\t9\t4102444800000\n' "ffff" "$(hex expires-in-2100)"
  echo "end 604"
} >"${work}/in.dump"

store="${work}/store"
check "load a hand-written dump" "${cli}" -p "${store}" load -i "${work}/in.dump"
check "dump it again" "${cli}" -p "${store}" dump -o "${work}/out.dump"
check "load then dump is byte for byte" cmp "${work}/in.dump" "${work}/out.dump"

# One store's dump loaded into another dumps the same (through standard input and output).
"${cli}" -p "${store}" dump -t accounts >"${work}/accounts.dump"
check "a table's dump, from stdin" "${cli}" -p "${work}/copy" load -i - <"${work}/accounts.dump"
check "the copy dumps the same" cmp "${work}/accounts.dump" <("${cli}" -p "${work}/copy" dump)

# stat: entries and live bytes per partition equal the records of the dump.
"${cli}" -p "${store}" stat >"${work}/stat.txt"
expect_row() {  # expect_row PARTITION ENTRIES LIVE_BYTES
  awk -v p="$1" -v e="$2" -v b="$3" '$1 == p { found = ($2 == e && $3 == b) } END { exit !found }' \
    "${work}/stat.txt"
}
for part in accounts.0 accounts.3 blobs.1; do
  table=${part%.*}
  partition=${part#*.}
  read -r entries bytes < <(awk -F'\t' -v t="${table}" -v p="${partition}" \
    '$1 == t && $2 == p { n++; b += (length($3) + length($4)) / 2 } END { print n, b }' \
    "${work}/in.dump")
  check "stat of ${part}: ${entries} entries, ${bytes} bytes" expect_row "${part}" "${entries}" "${bytes}"
done
check "stat's total" awk '$1 == "total" { found = ($4 == 604) } END { exit !found }' "${work}/stat.txt"
check "stat counts data files on disk" awk '$1 == "accounts.0" { found = ($4 >= 1 && $5 > 0) } END { exit !found }' "${work}/stat.txt"

# get, put, scan.
check "get" test "$("${cli}" -p "${store}" get accounts 3 acct123)" = "balance-123-3"
check "get --hex" test "$("${cli}" -p "${store}" --hex get blobs 1 0009)" = "$(hex tab)"
check "get of an absent key exits 1" test "$(exit_code "${cli}" -p "${store}" get accounts 3 nope)" = 1
check "put" "${cli}" -p "${store}" put accounts 3 acct999 fresh --ts 7
check "the put is read back" test "$("${cli}" -p "${store}" get accounts 3 acct999)" = fresh
check "scan with bounds and a limit" test \
  "$("${cli}" -p "${store}" scan accounts 0 --begin acct200 --end acct300 --limit 2)" = \
  "$(printf 'acct200\tbalance-200-0\nacct201\tbalance-201-0')"

# manifest: the snapshot and the log records, and a clean replay.
"${cli}" -p "${store}" manifest accounts 3 >"${work}/manifest.txt"
check "manifest shows the snapshot" grep -q '^record 0 at 0: snapshot' "${work}/manifest.txt"
check "manifest shows log records" grep -q '^record 1 at 4096: log' "${work}/manifest.txt"
check "manifest replays" grep -q '^replay: ok' "${work}/manifest.txt"

# Bad input changes nothing: unsorted records, a wrong count, upper-case hex, no end line.
"${cli}" -p "${store}" dump >"${work}/before.dump"
bad_dump() {  # bad_dump NAME: the dump with one defect
  case $1 in
    unsorted) sed '3{h;d};4{G}' "${work}/in.dump" ;;
    count) sed 's/^end 604$/end 605/' "${work}/in.dump" ;;
    upper) sed '2s/\t61/\t6A/' "${work}/in.dump" ;;
    no_end) sed '$d' "${work}/in.dump" ;;
    header) sed '1s/.*/eloqstore-dump 2/' "${work}/in.dump" ;;
    fields) sed '5s/\t0$//' "${work}/in.dump" ;;
  esac
}
for defect in unsorted count upper no_end header fields; do
  bad_dump "${defect}" >"${work}/bad.dump"
  check "a dump with a ${defect} defect is refused" \
    test "$(exit_code "${cli}" -p "${store}" load -i "${work}/bad.dump")" = 2
done
check "nothing of the refused dumps was written" cmp "${work}/before.dump" <("${cli}" -p "${store}" dump)
check "bad usage is refused" test "$(exit_code "${cli}" --threads 0 -p "${store}" stat)" = 2
check "a missing store is refused" test "$(exit_code "${cli}" -p "${work}/none" stat)" = 2
check "a missing command is refused" test "$(exit_code "${cli}" -p "${store}")" = 2

# verify: sound, then one flipped bit in a data page of accounts.0 (loaded in one commit: every
# page of its first data file is live).
check "verify passes a sound store" "${cli}" -p "${store}" verify
data=$(find "${store}/accounts.0" -name 'data_*' | sort | head -1)
python3 - "${data}" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100)
    b = f.read(1)
    f.seek(100)
    f.write(bytes([b[0] ^ 0x10]))
PY
check "verify fails after a flipped bit (exit 1)" test "$(exit_code "${cli}" -p "${store}" verify)" = 1
check "verify names the partition" bash -c "'${cli}' -p '${store}' verify | grep -q '^CORRUPT  accounts.0'"

if ((failures > 0)); then
  echo "${failures} checks failed" >&2
  exit 1
fi
echo "cli tests passed"
