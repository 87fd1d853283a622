#!/usr/bin/env bash
# Snapshots of a chat directory (spec chapter 8) against restic, on the same tree, to a local
# folder, in the same run: times, bytes stored, peak memory. The figures go into
# benches/README.md; nothing here is a pass/fail test.
#
#   bash benches/restic-compare.sh [WORK_DIR]       (default: a new temporary directory)
#
# SCALE=0.05 (say) makes every count and the database that much smaller, for a quick try.
#
# Needs `restic` and GNU `time` (Debian packages `restic` and `time`) and python3, and builds
# `e2ee-backup` in release. WORK_DIR needs about 12 GB free; it is deleted at the end.
#
# The tree (seeded, the same every run): a 256 MiB database of 4 KiB pages of message-like
# text, 10,000 media files (75% 10-120 KiB, 24% 120-700 KiB, 1% 1-20 MiB, incompressible) and
# 300 stickers (8-60 KiB). Three backups: the first; a second with nothing changed; a third
# after 1% more media files and 5% of the database's pages rewritten (in 64 runs of adjacent
# pages, as appends and b-tree rebalancing rewrite neighbouring pages). Then a restore of the
# whole tree and a check that reads every stored byte (`verify --read-data`, `restic check
# --read-data`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
tree="$work/tree"

cargo build -q --release -p e2ee-backup-cli --manifest-path "$repo/Cargo.toml"
ours="$repo/target/release/e2ee-backup"
[ -x "$ours" ] || ours="${CARGO_TARGET_DIR:-$repo/target}/release/e2ee-backup"

export SCALE="${SCALE:-1}"
python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
scale = float(os.environ["SCALE"])
r = random.Random(2026)
os.makedirs(f"{root}/Databases", exist_ok=True)
words = [bytes(w, "ascii") for w in "see you at the station tomorrow ok thanks lol where are you now call me later happy birthday".split()]
with open(f"{root}/Databases/msgstore.db", "wb") as db:
    for _ in range(int(256 * 1024 // 4 * scale)):
        page = bytearray()
        while len(page) < 4096:
            page += b" ".join(r.choice(words) for _ in range(r.randint(3, 12))) + r.randbytes(12)
        db.write(page[:4096])
def size():
    x = r.random()
    if x < 0.75: return r.randint(10 << 10, 120 << 10)
    if x < 0.99: return r.randint(120 << 10, 700 << 10)
    return r.randint(1 << 20, 20 << 20)
for i in range(int(10000 * scale)):
    folder = ["WhatsApp Images", "WhatsApp Voice Notes", "WhatsApp Video", "WhatsApp Documents"][i % 4]
    os.makedirs(f"{root}/Media/{folder}", exist_ok=True)
    with open(f"{root}/Media/{folder}/IMG-{i:05}.bin", "wb") as f:
        f.write(r.randbytes(size()))
os.makedirs(f"{root}/Media/WhatsApp Stickers", exist_ok=True)
for i in range(int(300 * scale)):
    with open(f"{root}/Media/WhatsApp Stickers/STK-{i:03}.webp", "wb") as f:
        f.write(r.randbytes(r.randint(8 << 10, 60 << 10)))
PY

change() {
python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
scale = float(os.environ["SCALE"])
r = random.Random(7)
pages = int(256 * 1024 // 4 * scale)
changed = 0
with open(f"{root}/Databases/msgstore.db", "r+b") as db:
    run = max(1, pages // 20 // 64)
    for _ in range(64):
        start = r.randrange(pages - run)
        db.seek(start * 4096)
        db.write(r.randbytes(run * 4096))
        changed += run * 4096
added = 0
for i in range(int(100 * scale)):
    n = r.randint(10 << 10, 700 << 10)
    with open(f"{root}/Media/WhatsApp Images/NEW-{i:03}.bin", "wb") as f:
        f.write(r.randbytes(n))
    added += n
print(changed + added)
PY
}

# run CMD...: wall seconds and peak resident KiB of CMD, into $secs and $kib. The two tools
# take turns going first, so that neither always runs on a cache the other warmed.
run() {
  # Write back what the previous step left dirty first, so that it does not slow this one.
  sync
  /usr/bin/time -o "$work/time" -f '%e %M' "$@" > /dev/null 2> "$work/stderr" || {
    cat "$work/stderr" >&2
    return 1
  }
  read -r secs kib < "$work/time"
}
size() { du -sb "$1" | cut -f1; }

export RESTIC_PASSWORD=compare RESTIC_REPOSITORY="$work/restic" RESTIC_CACHE_DIR="$work/restic-cache"
export E2EE_BACKUP_DIR="$work/client"
restic init -q > /dev/null
"$ours" enable --key --store "$work/ours" -q > /dev/null

# Let the tree's times settle (spec 8.7.1: files written in the last 2 s are read every time).
sleep 3
printf '%-34s %12s %12s\n' "" restic e2ee-backup
report() { printf '%-34s %12s %12s\n' "$1" "$2" "$3"; }
tree_bytes=$(size "$tree")
report "tree bytes" "$tree_bytes" "$tree_bytes"

run restic backup -q "$tree"; r_s=$secs; r_k=$kib
run "$ours" backup "$tree" -q; o_s=$secs; o_k=$kib
report "first backup s" "$r_s" "$o_s"
report "first backup peak KiB" "$r_k" "$o_k"
r_size=$(size "$work/restic"); o_size=$(size "$work/ours")
report "bytes stored" "$r_size" "$o_size"

run "$ours" backup "$tree" -q; o_s=$secs; o_k=$kib
run restic backup -q "$tree"; r_s=$secs; r_k=$kib
report "no-change backup s" "$r_s" "$o_s"
report "no-change backup peak KiB" "$r_k" "$o_k"

changed=$(change)
sleep 3
run restic backup -q "$tree"; r_s=$secs; r_k=$kib
run "$ours" backup "$tree" -q; o_s=$secs; o_k=$kib
report "third backup s" "$r_s" "$o_s"
report "third backup peak KiB" "$r_k" "$o_k"
report "bytes changed" "$changed" "$changed"
r_new=$(( $(size "$work/restic") - r_size )); o_new=$(( $(size "$work/ours") - o_size ))
report "bytes added to the store" "$r_new" "$o_new"

run "$ours" restore --snapshot latest --to "$work/ours-out" -q; o_s=$secs; o_k=$kib
run restic restore latest -q --target "$work/restic-out"; r_s=$secs; r_k=$kib
report "restore s" "$r_s" "$o_s"
report "restore peak KiB" "$r_k" "$o_k"
diff -r "$tree" "$work/ours-out" > /dev/null && echo "e2ee-backup restored the tree byte for byte"
diff -r "$tree" "$work/restic-out$tree" > /dev/null && echo "restic restored the tree byte for byte"
rm -rf "$work/restic-out" "$work/ours-out"

run restic check -q --read-data; r_s=$secs; r_k=$kib
run "$ours" verify --read-data -q; o_s=$secs; o_k=$kib
report "check, every byte read s" "$r_s" "$o_s"
report "check peak KiB" "$r_k" "$o_k"
