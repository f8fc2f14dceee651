#!/usr/bin/env bash
# Real code in several languages for the tokenizer's training sample and its held-out set, and English prose
# that ../shared/data lacks (fortune cookies: quotes, jokes, literature), fetched with the package managers
# (npm, apt) at pinned versions, unpacked under runs/code_corpus/ (configs/tokenizer.yaml).
#
#   bash tools/fetch_code_corpus.sh [DEST]        # default DEST: runs/code_corpus; skips what is there
#
# train/: JavaScript/TypeScript (npm), C (glibc, libxcrypt sources), SQL (PostgreSQL's bundled scripts),
#         shell (bash-completion), Go (Go 1.19's sources: std and cmd), Rust (rustc 1.63: compiler and std);
#         text/fortunes.txt (Debian's fortunes). heldout/: other npm packages and another C project (the
#         X server), whole packages never seen in training.
set -euo pipefail
dest=${1:-runs/code_corpus}
npm_train=(typescript@5.4.5 lodash@4.17.21 express@4.19.2 vue@3.4.27 axios@1.7.2 webpack@5.91.0 eslint@8.57.0)
npm_heldout=(d3@7.9.0 rxjs@7.8.1 jquery@3.7.1 chart.js@4.4.3)
deb_train=(glibc-source libxcrypt-source postgresql-15 bash-completion golang-1.19-src rust-src fortunes)
deb_heldout=(xorg-server-source)

fetch_npm() {  # split, package@version: npm pack → DIR/NAME/
  local split=$1 spec=$2 name=${2%@*} tmp
  [ -d "$dest/$split/npm/$name" ] && return
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  mkdir -p "$dest/$split/npm/$name"
  tar xzf "$tmp"/*.tgz -C "$dest/$split/npm/$name" --strip-components=1
  rm -rf "$tmp"
}

fetch_deb() {  # split, package: apt-get download → its files, and any source tarball inside, unpacked
  local split=$1 pkg=$2 tmp out
  out="$dest/$split/debian/$pkg"
  [ -d "$out" ] && return
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "$pkg" >/dev/null)
  mkdir -p "$out"
  dpkg-deb -x "$tmp"/*.deb "$tmp/root"
  if [ -d "$tmp/root/usr/src" ]; then  # source packages ship tarballs there (not the test data of others)
    find "$tmp/root/usr/src" -name '*.tar.*' | while read -r tarball; do tar xf "$tarball" -C "$out"; rm "$tarball"; done
  fi
  cp -r "$tmp/root/." "$out/"
  rm -rf "$tmp"
}

for spec in "${npm_train[@]}"; do fetch_npm train "$spec"; done
for spec in "${npm_heldout[@]}"; do fetch_npm heldout "$spec"; done
for pkg in "${deb_train[@]}"; do fetch_deb train "$pkg"; done
for pkg in "${deb_heldout[@]}"; do fetch_deb heldout "$pkg"; done

# fortune cookies as plain text (documents separated by blank lines, as the `text` reader wants); the
# offensive section and the ASCII art are left out
fortunes=$dest/train/debian/fortunes/usr/share/games/fortunes
if [ ! -f "$dest/train/text/fortunes.txt" ]; then
  mkdir -p "$dest/train/text"
  find "$fortunes" -maxdepth 1 -type f ! -name '*.dat' ! -name '*art*' -print0 | sort -z \
    | xargs -0 sed 's/^%$//' > "$dest/train/text/fortunes.txt"
fi
du -sh "$dest"/*/*/* | sed "s|$dest/||"
