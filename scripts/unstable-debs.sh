# Sourced by scripts/install-criu.sh and scripts/install-containerd.sh: downloads packages from
# Debian unstable into a folder, with a private apt state, leaving the system's sources and
# package lists untouched (the packages are then unpacked into a prefix of their own, never
# installed).
#
#   unstable_debs DEST PKG...
unstable_debs() {
  local dest=$1 work
  shift
  work=$(mktemp -d)
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main" > "$work/sources.list"
  local apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Get::List-Cleanup=0"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  echo "fetching Debian unstable's package lists"
  apt-get -q "${apt[@]}" update >/dev/null
  echo "downloading $# packages from Debian unstable"
  (cd "$dest" && apt-get -q "${apt[@]}" download "$@" >/dev/null)
  rm -rf "$work"
}

# Replaces PREFIX with the packages in DEBS unpacked (never installed): a half-made prefix is never
# in PREFIX's place.
#
#   unpack_prefix DEBS PREFIX
unpack_prefix() {
  local debs=$1 prefix=$2 d
  rm -rf "$prefix.new"
  mkdir -p "$prefix.new"
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$prefix.new"; done
  rm -rf "$prefix"
  mv "$prefix.new" "$prefix"
}
